//! bpftrace output for Kgent: typed events parsed from `bpftrace -f json`
//! lines, and renderings of maps as text, Markdown, HTML and SVG.
//!
//! The crate knows nothing of Jupyter, processes or I/O: the kernel feeds it
//! lines and puts the returned [`Bundle`]s into display messages.
//!
//! ```
//! use kgent_output::{parse_line, render_map, OutputEvent, RenderOptions};
//!
//! let events = parse_line(r#"{"type": "map", "data": {"@c": {"bash": 12, "sshd": 3}}}"#).unwrap();
//! let OutputEvent::Map(dump) = &events[0] else { panic!() };
//! let bundle = render_map(dump, &RenderOptions::default());
//! assert_eq!(bundle.plain, "@c[bash]: 12\n@c[sshd]:  3");
//! ```

pub mod event;
mod json;
pub mod render;

pub use event::{parse_line, Bucket, MapDump, MapValue, OutputEvent, ParseError, Scalar, Stats};
pub use render::{render_map, render_maps, Bundle, RenderOptions};
