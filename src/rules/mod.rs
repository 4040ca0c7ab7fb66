//! Rule files (SPEC section 4): `yaml` parses with positions, `schema` is
//! the typed form, `load` reads files and folders and checks them, reporting
//! every problem as `FILE:LINE:COLUMN: message`.

pub mod load;
pub mod matcher;
pub mod schema;
pub mod set;
pub mod watch;
pub mod when;
pub mod yaml;

pub use load::{LoadError, LoadErrorKind};
