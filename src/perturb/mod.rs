//! What actions do to a credential (SPEC section 5). `sign` re-signs and
//! mints with the rule file's keys. Nothing here touches the network or logs.

pub mod sign;
pub mod token;

pub use sign::{Key, KeyError};
