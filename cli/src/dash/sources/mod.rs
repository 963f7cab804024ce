//! Background data tasks. Each one polls or streams one source and sends typed
//! [`Update`](super::state::Update)s to the UI loop; none of them is ever awaited by
//! drawing. Every task stops when the shared cancellation token fires.

pub mod docker;
pub mod faults;
pub mod http;
pub mod logs;
pub mod metrics;
