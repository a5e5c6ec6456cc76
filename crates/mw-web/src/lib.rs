//! mw-web
