//! The one table of what differs per tier.
