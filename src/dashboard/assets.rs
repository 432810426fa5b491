//! The page's script and stylesheet, compiled into the binary (works on a read-only root
//! filesystem; no CDN).

pub const APP_JS: &str = include_str!("assets/app.js");
pub const STYLE_CSS: &str = include_str!("assets/style.css");
