//! mw-live
