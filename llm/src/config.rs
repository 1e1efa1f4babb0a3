//! `LlmConfig`: which endpoint and model to use, read from the environment and `llm.toml`.
//!
//! Precedence: environment over file over defaults. The `OPENAI_*` variables
//! are only fallbacks: a user who has `OPENAI_API_KEY` set for other tools has
//! not thereby switched Kgent's LLM on. Kgent counts as configured when
//! `KGENT_LLM_BASE_URL`, `KGENT_LLM_MODEL` or `KGENT_LLM_API_KEY` is set, or
//! the config file exists; otherwise [`LlmConfig::load`] returns `None` and the
//! product works offline.
//!
//! The file (`$XDG_CONFIG_HOME/kgent/llm.toml`, else `~/.config/kgent/llm.toml`):
//!
//! ```toml
//! base_url = "http://127.0.0.1:11434/v1"   # Ollama; default https://api.openai.com/v1
//! model = "qwen2.5-coder:7b"
//! api_key = "sk-..."          # optional for local servers
//! timeout_secs = 120          # whole request, first byte to last
//! idle_timeout_secs = 60      # longest silence inside a streamed reply
//! max_tokens = 2048
//! temperature = 0.2
//!
//! [embeddings]                # optional: an OpenAI-compatible /v1/embeddings model
//! model = "nomic-embed-text"  # switches remote embeddings on
//! base_url = "..."            # default: the chat base URL above
//! api_key = "..."             # default: the chat key, if base_url is the same server
//! timeout_secs = 60           # per request
//! batch_size = 64             # texts per request
//! ```
//!
//! [`EmbeddingsConfig`] reads the `[embeddings]` table and the
//! `KGENT_EMBEDDINGS_*` variables; see there for its precedence.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::LlmError;

/// OpenAI's own endpoint: the base URL when only a model is given.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Default limit on one whole chat call; local models on CPU are slow.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default limit on silence between two chunks of a streamed reply.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default reply budget: a bpftrace program with explanation needs far less,
/// and a bound keeps a rambling model from using the whole timeout.
pub const DEFAULT_MAX_TOKENS: u32 = 2048;
/// Default sampling temperature: low, because we want code, not prose.
pub const DEFAULT_TEMPERATURE: f32 = 0.2;

/// Where one configuration value came from, for [`LlmConfig::describe`] and errors.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Built-in default.
    Default,
    /// An environment variable, by name.
    Env(&'static str),
    /// The config file, and the 1-based line of the value.
    File {
        /// The file.
        path: PathBuf,
        /// Line of the key, when known.
        line: Option<usize>,
    },
    /// Set in code (tests, other crates).
    Code,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Env(name) => write!(f, "from {name}"),
            Origin::File { path, .. } => write!(f, "from {}", path.display()),
            Origin::Code => f.write_str("set in code"),
        }
    }
}

impl Origin {
    /// A configuration error located at this origin.
    fn error(&self, message: String) -> LlmError {
        let (origin, line) = match self {
            Origin::Env(name) => (name.to_string(), None),
            Origin::File { path, line } => (path.display().to_string(), *line),
            Origin::Default | Origin::Code => ("the LLM configuration".to_string(), None),
        };
        LlmError::Config {
            origin,
            line,
            message,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Origins {
    base_url: Origin,
    model: Origin,
    api_key: Origin,
    timeout: Origin,
    idle_timeout: Origin,
    max_tokens: Origin,
    temperature: Origin,
}

impl Origins {
    fn all(origin: Origin) -> Self {
        Origins {
            base_url: origin.clone(),
            model: origin.clone(),
            api_key: origin.clone(),
            timeout: origin.clone(),
            idle_timeout: origin.clone(),
            max_tokens: origin.clone(),
            temperature: origin,
        }
    }
}

/// How to reach the LLM. Build one with [`LlmConfig::new`] or [`LlmConfig::load`].
///
/// `Debug` and [`LlmConfig::describe`] never show the API key.
#[derive(Clone, PartialEq)]
pub struct LlmConfig {
    /// Base URL of the OpenAI-compatible API, without a trailing slash,
    /// e.g. `http://127.0.0.1:11434/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// Model name as the server knows it.
    pub model: String,
    /// Bearer token; `None` for local servers that need none.
    pub api_key: Option<String>,
    /// Limit on one whole chat call, connection to last token.
    pub timeout: Duration,
    /// Limit on silence between two chunks of a streamed reply.
    pub idle_timeout: Duration,
    /// Default reply budget in tokens (`None`: the server's default).
    pub max_tokens: Option<u32>,
    /// Default sampling temperature (`None`: the server's default).
    pub temperature: Option<f32>,
    origins: Origins,
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.display_url())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .finish()
    }
}

/// The file's keys; unknown keys are an error so a typo does not pass silently.
/// `Spanned` keeps each value's position so a bad value is reported by line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    base_url: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    api_key: Option<Spanned<String>>,
    timeout_secs: Option<Spanned<f64>>,
    idle_timeout_secs: Option<Spanned<f64>>,
    max_tokens: Option<Spanned<i64>>,
    temperature: Option<Spanned<f64>>,
    /// The `[embeddings]` table, read by [`EmbeddingsConfig`].
    embeddings: Option<Spanned<EmbeddingsFile>>,
}

impl FileConfig {
    /// Whether the file sets anything for chat: a file that holds only an
    /// `[embeddings]` table configures embeddings, not a chat model.
    fn configures_chat(&self) -> bool {
        self.embeddings.is_none()
            || self.base_url.is_some()
            || self.model.is_some()
            || self.api_key.is_some()
            || self.timeout_secs.is_some()
            || self.idle_timeout_secs.is_some()
            || self.max_tokens.is_some()
            || self.temperature.is_some()
    }
}

/// The keys of the `[embeddings]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingsFile {
    base_url: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    api_key: Option<Spanned<String>>,
    timeout_secs: Option<Spanned<f64>>,
    batch_size: Option<Spanned<i64>>,
}

/// One value and where it came from.
type Sourced<T> = Option<(T, Origin)>;

/// The environment and the file, read the same way by [`LlmConfig::load_from`]
/// and [`EmbeddingsConfig::load_from`] so precedence and error origins agree.
struct Sources<E> {
    env: E,
    /// The file and its text, for line numbers; both empty when there is no file.
    path: PathBuf,
    text: String,
}

impl<E: Fn(&str) -> Option<String>> Sources<E> {
    /// Reads `file`; its settings are `None` when there is none or it does not exist.
    fn read(env: E, file: Option<&Path>) -> Result<(Self, Option<FileConfig>), LlmError> {
        let (path, fc, text) = match file {
            Some(path) => read_file(path)?.map(|(fc, text)| (path.to_path_buf(), fc, text)),
            None => None,
        }
        .map_or_else(Default::default, |(path, fc, text)| (path, Some(fc), text));
        Ok((Sources { env, path, text }, fc))
    }

    /// The first of `names` that is set, trimmed. Empty values count as
    /// unset: `export KGENT_LLM_MODEL=` is a common way to clear one.
    fn var(&self, names: &[&'static str]) -> Sourced<String> {
        names.iter().find_map(|&name| {
            let v = (self.env)(name).filter(|v| !v.trim().is_empty())?;
            Some((v.trim().to_string(), Origin::Env(name)))
        })
    }

    /// The first of `names` that is set, else the file's value. Always text,
    /// so numbers are parsed (and reported) the same way from either source.
    fn get<T: fmt::Display>(
        &self,
        names: &[&'static str],
        file: Option<Spanned<T>>,
    ) -> Sourced<String> {
        self.var(names)
            .or_else(|| file.map(|s| (s.get_ref().to_string(), self.at(s.span()))))
    }

    /// The place in the file where `span` starts.
    fn at(&self, span: std::ops::Range<usize>) -> Origin {
        Origin::File {
            path: self.path.clone(),
            line: Some(line_of(&self.text, span.start)),
        }
    }

    /// An endpoint without a model: blames the file (at `line`) when
    /// `in_file`, else the environment, which has no line to point at.
    fn no_model(&self, in_file: bool, line: Option<usize>, message: &str) -> LlmError {
        LlmError::Config {
            origin: match in_file {
                true => self.path.display().to_string(),
                false => "the environment".to_string(),
            },
            line,
            message: message.to_string(),
        }
    }
}

/// `value` parsed, or `default` when unset; a bad value is reported where it came from.
fn parse_or<T>(
    value: Sourced<String>,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<(T, Origin), LlmError> {
    match value {
        None => Ok((default, Origin::Default)),
        Some((raw, origin)) => match parse(&raw) {
            Ok(v) => Ok((v, origin)),
            Err(message) => Err(origin.error(message)),
        },
    }
}

impl LlmConfig {
    /// A configuration for `base_url` and `model` with default limits and no key.
    /// Values are checked by [`LlmConfig::validate`], which
    /// [`crate::OpenAiProvider::new`] calls.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        LlmConfig {
            base_url: base_url.into().trim().trim_end_matches('/').to_string(),
            model: model.into(),
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_tokens: Some(DEFAULT_MAX_TOKENS),
            temperature: Some(DEFAULT_TEMPERATURE),
            origins: Origins::all(Origin::Code),
        }
    }

    /// Reads the process environment and the default config file.
    /// `Ok(None)`: no LLM is configured (Kgent works offline).
    pub fn load() -> Result<Option<Self>, LlmError> {
        let env = |name: &str| std::env::var(name).ok();
        let path = Self::default_path(&env);
        Self::load_from(env, path.as_deref())
    }

    /// Like [`LlmConfig::load`], with the environment and the file given
    /// explicitly, so tests need not touch the process environment.
    /// A `file` that does not exist counts as no file.
    pub fn load_from(
        env: impl Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Result<Option<Self>, LlmError> {
        let (src, fc) = Sources::read(env, file)?;
        let kgent_env = ["KGENT_LLM_BASE_URL", "KGENT_LLM_MODEL", "KGENT_LLM_API_KEY"];
        if !fc.as_ref().is_some_and(FileConfig::configures_chat) && src.var(&kgent_env).is_none() {
            return Ok(None);
        }
        let fc = fc.unwrap_or_default();
        // Environment first, then the file.
        let base_url = src.get(&["KGENT_LLM_BASE_URL", "OPENAI_BASE_URL"], fc.base_url);
        let model = src.get(&["KGENT_LLM_MODEL"], fc.model);
        let api_key = src.get(&["KGENT_LLM_API_KEY", "OPENAI_API_KEY"], fc.api_key);
        let timeout = src.get(&["KGENT_LLM_TIMEOUT"], fc.timeout_secs);
        let idle = src.get(&["KGENT_LLM_IDLE_TIMEOUT"], fc.idle_timeout_secs);
        // Through f64 as it always was, so a huge value is quoted (rounded) the same.
        let max_tokens = fc
            .max_tokens
            .map(|s| Spanned::new(s.span(), *s.get_ref() as f64));
        let max_tokens = src.get(&["KGENT_LLM_MAX_TOKENS"], max_tokens);
        let temperature = src.get(&["KGENT_LLM_TEMPERATURE"], fc.temperature);

        let Some((model, model_origin)) = model else {
            // Any file there is gets the blame, even one that alone would not count.
            let in_file = !src.path.as_os_str().is_empty();
            return Err(src.no_model(
                in_file,
                None,
                "an LLM endpoint is configured but no model: set KGENT_LLM_MODEL \
                 or `model = \"...\"` in llm.toml",
            ));
        };
        let (base_url, base_origin) =
            base_url.unwrap_or_else(|| (OPENAI_BASE_URL.to_string(), Origin::Default));
        let (timeout, timeout_origin) = parse_or(timeout, DEFAULT_TIMEOUT, parse_seconds)?;
        let (idle_timeout, idle_origin) = parse_or(idle, DEFAULT_IDLE_TIMEOUT, parse_seconds)?;
        let (max_tokens, max_tokens_origin) = parse_or(max_tokens, DEFAULT_MAX_TOKENS, |raw| {
            raw.parse::<u32>()
                .map_err(|_| format!("max_tokens {raw:?} is not a whole number of tokens"))
        })?;
        let (temperature, temperature_origin) =
            parse_or(temperature, DEFAULT_TEMPERATURE, |raw| {
                raw.parse::<f32>()
                    .map_err(|_| format!("temperature {raw:?} is not a number"))
            })?;
        let (api_key, api_key_origin) =
            api_key.map_or((None, Origin::Default), |(k, o)| (Some(k), o));

        let cfg = LlmConfig {
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            model: model.trim().to_string(),
            api_key,
            timeout,
            idle_timeout,
            max_tokens: Some(max_tokens),
            temperature: Some(temperature),
            origins: Origins {
                base_url: base_origin,
                model: model_origin,
                api_key: api_key_origin,
                timeout: timeout_origin,
                idle_timeout: idle_origin,
                max_tokens: max_tokens_origin,
                temperature: temperature_origin,
            },
        };
        cfg.validate()?;
        Ok(Some(cfg))
    }

    /// `$XDG_CONFIG_HOME/kgent/llm.toml`, else `$HOME/.config/kgent/llm.toml`.
    pub fn default_path(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
        // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
        let xdg = env("XDG_CONFIG_HOME").filter(|v| Path::new(v).is_absolute());
        let base = match xdg {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(env("HOME").filter(|h| !h.is_empty())?).join(".config"),
        };
        Some(base.join("kgent").join("llm.toml"))
    }

    /// Checks every value; the error names where the bad value came from.
    pub fn validate(&self) -> Result<(), LlmError> {
        let o = &self.origins;
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => {
                return Err(o.base_url.error(format!(
                    "base URL {:?} is not an http(s) URL such as http://127.0.0.1:11434/v1",
                    self.display_url()
                )))
            }
        }
        if self.model.trim().is_empty() {
            return Err(o.model.error("the model name is empty".into()));
        }
        for (d, origin, what) in [
            (self.timeout, &o.timeout, "timeout"),
            (self.idle_timeout, &o.idle_timeout, "idle timeout"),
        ] {
            if d.is_zero() {
                return Err(origin.error(format!("the {what} must be more than 0 seconds")));
            }
        }
        if self.max_tokens == Some(0) {
            return Err(o.max_tokens.error("max_tokens must be at least 1".into()));
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(o
                    .temperature
                    .error(format!("temperature {t} is outside 0..=2")));
            }
        }
        match &self.api_key {
            // async-openai builds the Authorization header with `.parse().unwrap()`:
            // a key with a newline or a non-ASCII character would panic there.
            Some(key) if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(o.api_key.error(
                    "the API key is empty or contains spaces, control or non-ASCII \
                     characters (a stray newline?)"
                        .into(),
                ));
            }
            None if self.base_url.starts_with(OPENAI_BASE_URL) => {
                let origin = match o.base_url {
                    Origin::Default => &o.model,
                    _ => &o.base_url,
                };
                return Err(origin.error(
                    "the endpoint is api.openai.com (no base URL is set), which needs an API \
                     key: set KGENT_LLM_API_KEY or OPENAI_API_KEY, or set base_url to a local \
                     server"
                        .into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The base URL without any `user:password@` part, for messages and logs.
    pub fn display_url(&self) -> String {
        redact_url(&self.base_url)
    }

    /// A few lines for `%llm` and `kgent doctor`: each value and where it came
    /// from. Says whether a key is set, never what it is.
    pub fn describe(&self) -> String {
        let o = &self.origins;
        let opt = |v: Option<String>| v.unwrap_or_else(|| "server default".to_string());
        let key = match &self.api_key {
            Some(_) => format!("set ({})", o.api_key),
            None => "not set".to_string(),
        };
        format!(
            "endpoint:     {} ({})\n\
             model:        {} ({})\n\
             API key:      {key}\n\
             timeout:      {} s per request ({}), {} s of silence mid-reply ({})\n\
             max tokens:   {} ({})\n\
             temperature:  {} ({})",
            self.display_url(),
            o.base_url,
            self.model,
            o.model,
            fmt_secs(self.timeout),
            o.timeout,
            fmt_secs(self.idle_timeout),
            o.idle_timeout,
            opt(self.max_tokens.map(|v| v.to_string())),
            o.max_tokens,
            opt(self.temperature.map(|v| v.to_string())),
            o.temperature,
        )
    }
}

/// Default limit on one embeddings request (one batch).
pub const DEFAULT_EMBEDDINGS_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of texts sent in one embeddings request.
pub const DEFAULT_EMBEDDINGS_BATCH_SIZE: usize = 64;
/// The most texts OpenAI accepts in one embeddings request.
pub const MAX_EMBEDDINGS_BATCH_SIZE: usize = 2048;

#[derive(Debug, Clone, PartialEq)]
struct EmbeddingsOrigins {
    base_url: Origin,
    model: Origin,
    api_key: Origin,
    timeout: Origin,
    batch_size: Origin,
}

/// How to reach an OpenAI-compatible `POST {base_url}/embeddings` model.
/// Build one with [`EmbeddingsConfig::new`] or [`EmbeddingsConfig::load`].
///
/// Sources, most specific first (environment before file at each level):
///
/// | value      | embeddings' own                                             | then the chat endpoint's                                        |
/// |------------|-------------------------------------------------------------|-----------------------------------------------------------------|
/// | model      | `KGENT_EMBEDDINGS_MODEL`, `[embeddings] model`              | none: required                                                  |
/// | base URL   | `KGENT_EMBEDDINGS_BASE_URL`, `[embeddings] base_url`        | `KGENT_LLM_BASE_URL`, `OPENAI_BASE_URL`, `base_url`, OpenAI's   |
/// | API key    | `KGENT_EMBEDDINGS_API_KEY`, `[embeddings] api_key`          | `KGENT_LLM_API_KEY`, `OPENAI_API_KEY`, `api_key` (same server only) |
/// | timeout    | `KGENT_EMBEDDINGS_TIMEOUT`, `[embeddings] timeout_secs`     | none: [`DEFAULT_EMBEDDINGS_TIMEOUT`]                            |
/// | batch size | `KGENT_EMBEDDINGS_BATCH_SIZE`, `[embeddings] batch_size`    | none: [`DEFAULT_EMBEDDINGS_BATCH_SIZE`]                         |
///
/// An embeddings-specific value in the file beats a chat value in the
/// environment: it says more precisely what the person wants. The chat key
/// is borrowed only when the embeddings go to the chat endpoint's server
/// (same scheme, host and port), so a key is never sent to a server it was
/// not configured for.
///
/// `Debug` and [`EmbeddingsConfig::describe`] never show the API key.
#[derive(Clone, PartialEq)]
pub struct EmbeddingsConfig {
    /// Base URL of the OpenAI-compatible API, without a trailing slash;
    /// requests go to `{base_url}/embeddings`.
    pub base_url: String,
    /// Embedding model name as the server knows it.
    pub model: String,
    /// Bearer token; `None` for local servers that need none.
    pub api_key: Option<String>,
    /// Limit on one request (one batch), connection to last byte.
    pub timeout: Duration,
    /// Texts per request; longer inputs are split into requests of this size.
    pub batch_size: usize,
    origins: EmbeddingsOrigins,
}

impl fmt::Debug for EmbeddingsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingsConfig")
            .field("base_url", &self.display_url())
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl EmbeddingsConfig {
    /// A configuration for `base_url` and `model` with default limits and no
    /// key. [`crate::OpenAiEmbeddings::new`] validates it.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        let code = Origin::Code;
        EmbeddingsConfig {
            base_url: base_url.into().trim().trim_end_matches('/').to_string(),
            model: model.into(),
            api_key: None,
            timeout: DEFAULT_EMBEDDINGS_TIMEOUT,
            batch_size: DEFAULT_EMBEDDINGS_BATCH_SIZE,
            origins: EmbeddingsOrigins {
                base_url: code.clone(),
                model: code.clone(),
                api_key: code.clone(),
                timeout: code.clone(),
                batch_size: code,
            },
        }
    }

    /// Reads the process environment and the default config file.
    /// `Ok(None)`: no embeddings model is configured (retrieval then uses
    /// the bundled model or BM25).
    pub fn load() -> Result<Option<Self>, LlmError> {
        let env = |name: &str| std::env::var(name).ok();
        let path = LlmConfig::default_path(&env);
        Self::load_from(env, path.as_deref())
    }

    /// Like [`EmbeddingsConfig::load`], with the environment and the file
    /// given explicitly (as [`LlmConfig::load_from`]). Configured when
    /// `KGENT_EMBEDDINGS_MODEL`, `KGENT_EMBEDDINGS_BASE_URL` or
    /// `KGENT_EMBEDDINGS_API_KEY` is set or the file has an `[embeddings]`
    /// table; then a model is required. The chat settings alone never
    /// switch embeddings on.
    pub fn load_from(
        env: impl Fn(&str) -> Option<String>,
        file: Option<&Path>,
    ) -> Result<Option<Self>, LlmError> {
        let (src, fc) = Sources::read(env, file)?;
        let FileConfig {
            base_url: chat_base_url,
            api_key: chat_api_key,
            embeddings: table,
            ..
        } = fc.unwrap_or_default();
        let own_env = [
            "KGENT_EMBEDDINGS_MODEL",
            "KGENT_EMBEDDINGS_BASE_URL",
            "KGENT_EMBEDDINGS_API_KEY",
        ];
        if table.is_none() && src.var(&own_env).is_none() {
            return Ok(None);
        }
        let table_line = table.as_ref().map(|t| line_of(&src.text, t.span().start));
        let ef = table.map(Spanned::into_inner).unwrap_or_default();

        let Some((model, model_origin)) = src.get(&["KGENT_EMBEDDINGS_MODEL"], ef.model) else {
            return Err(src.no_model(
                table_line.is_some(),
                table_line,
                "an embeddings endpoint is configured but no model: set \
                 KGENT_EMBEDDINGS_MODEL or `model = \"...\"` under [embeddings] in llm.toml",
            ));
        };

        let chat_base = src
            .get(&["KGENT_LLM_BASE_URL", "OPENAI_BASE_URL"], chat_base_url)
            .unwrap_or_else(|| (OPENAI_BASE_URL.to_string(), Origin::Default));
        let (base_url, base_origin) = src
            .get(&["KGENT_EMBEDDINGS_BASE_URL"], ef.base_url)
            .unwrap_or_else(|| chat_base.clone());
        // The chat key only goes to the chat endpoint's server.
        let (api_key, api_key_origin) = src
            .get(&["KGENT_EMBEDDINGS_API_KEY"], ef.api_key)
            .or_else(|| match same_server(&base_url, &chat_base.0) {
                true => src.get(&["KGENT_LLM_API_KEY", "OPENAI_API_KEY"], chat_api_key),
                false => None,
            })
            .map_or((None, Origin::Default), |(k, o)| (Some(k), o));
        let timeout = src.get(&["KGENT_EMBEDDINGS_TIMEOUT"], ef.timeout_secs);
        let (timeout, timeout_origin) =
            parse_or(timeout, DEFAULT_EMBEDDINGS_TIMEOUT, parse_seconds)?;
        let batch = src.get(&["KGENT_EMBEDDINGS_BATCH_SIZE"], ef.batch_size);
        let (batch_size, batch_origin) = parse_or(batch, DEFAULT_EMBEDDINGS_BATCH_SIZE, |raw| {
            raw.trim()
                .parse::<usize>()
                .map_err(|_| format!("batch_size {raw:?} is not a whole number of texts"))
        })?;

        let cfg = EmbeddingsConfig {
            base_url: base_url.trim().trim_end_matches('/').to_string(),
            model: model.trim().to_string(),
            api_key,
            timeout,
            batch_size,
            origins: EmbeddingsOrigins {
                base_url: base_origin,
                model: model_origin,
                api_key: api_key_origin,
                timeout: timeout_origin,
                batch_size: batch_origin,
            },
        };
        cfg.validate()?;
        Ok(Some(cfg))
    }

    /// Checks every value; the error names where the bad value came from.
    pub fn validate(&self) -> Result<(), LlmError> {
        let o = &self.origins;
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => {
                return Err(o.base_url.error(format!(
                    "embeddings base URL {:?} is not an http(s) URL such as \
                     http://127.0.0.1:11434/v1",
                    self.display_url()
                )))
            }
        }
        if self.model.trim().is_empty() {
            return Err(o.model.error("the embeddings model name is empty".into()));
        }
        if self.timeout.is_zero() {
            return Err(o
                .timeout
                .error("the embeddings timeout must be more than 0 seconds".into()));
        }
        if !(1..=MAX_EMBEDDINGS_BATCH_SIZE).contains(&self.batch_size) {
            return Err(o.batch_size.error(format!(
                "batch_size {} is outside 1..={MAX_EMBEDDINGS_BATCH_SIZE}",
                self.batch_size
            )));
        }
        match &self.api_key {
            // async-openai would panic building the header from such a key.
            Some(key) if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) => {
                Err(o.api_key.error(
                    "the embeddings API key is empty or contains spaces, control or \
                     non-ASCII characters (a stray newline?)"
                        .into(),
                ))
            }
            None if self.base_url.starts_with(OPENAI_BASE_URL) => {
                let origin = match o.base_url {
                    Origin::Default => &o.model,
                    _ => &o.base_url,
                };
                Err(origin.error(
                    "the embeddings endpoint is api.openai.com, which needs an API key: set \
                     KGENT_EMBEDDINGS_API_KEY (or api_key under [embeddings]), or set its \
                     base_url to a local server"
                        .into(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The base URL without any `user:password@` part, for messages, logs and ids.
    pub fn display_url(&self) -> String {
        redact_url(&self.base_url)
    }

    /// A few lines for `%llm` and `kgent doctor`: each value and where it
    /// came from. Says whether a key is set, never what it is.
    pub fn describe(&self) -> String {
        let o = &self.origins;
        let key = match &self.api_key {
            Some(_) => format!("set ({})", o.api_key),
            None => "not set".to_string(),
        };
        format!(
            "embeddings endpoint: {} ({})\n\
             embeddings model:    {} ({})\n\
             API key:             {key}\n\
             timeout:             {} s per request ({})\n\
             batch size:          {} texts per request ({})",
            self.display_url(),
            o.base_url,
            self.model,
            o.model,
            fmt_secs(self.timeout),
            o.timeout,
            self.batch_size,
            o.batch_size,
        )
    }
}

/// Whether two base URLs name the same server (scheme, host and port).
fn same_server(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a.trim()), reqwest::Url::parse(b.trim())) {
        (Ok(a), Ok(b)) => a.origin() == b.origin() && a.origin().is_tuple(),
        _ => false,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Reads and parses the file; `Ok(None)` when it does not exist.
fn read_file(path: &Path) -> Result<Option<(FileConfig, String)>, LlmError> {
    let origin = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LlmError::Config {
                origin,
                line: None,
                message: format!("cannot read it: {e}"),
            })
        }
    };
    match toml::from_str::<FileConfig>(&text) {
        Ok(cfg) => Ok(Some((cfg, text))),
        Err(e) => Err(LlmError::Config {
            origin,
            line: e.span().map(|span| line_of(&text, span.start)),
            message: e.message().trim().to_string(),
        }),
    }
}

/// "90", "2.5", "90s": seconds. Humans write all three.
fn parse_seconds(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let number = s.strip_suffix('s').unwrap_or(s).trim();
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        Ok(_) => Err(format!(
            "{raw:?} seconds is out of range (more than 0, at most a day)"
        )),
        Err(_) => Err(format!("{raw:?} is not a number of seconds")),
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

/// Drops `user:password@` from a URL. An unparseable URL loses everything
/// up to its last `@`, in case that was a credential.
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => match url.rsplit_once('@') {
            Some((_, rest)) => format!("***@{rest}"),
            None => url.to_string(),
        },
    }
}
