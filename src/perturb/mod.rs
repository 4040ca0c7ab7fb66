//! What actions do to a credential (SPEC section 5). `sign` re-signs and
//! mints with the rule file's keys. Nothing here touches the network or logs.

pub mod action;
pub mod sign;
pub mod token;

pub use action::{Action, Applied, CorruptMode, Synthetic, apply};
pub use sign::{Key, KeyError};
