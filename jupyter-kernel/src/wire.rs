//! Reading Jupyter messages leniently: HMAC checked, missing optional fields filled in.
//!
//! `jupyter-protocol` rejects some messages real clients send (e.g. a `history_request`
//! of type `search` without `n` or `unique`, which `jupyter_client` omits by default);
//! a kernel must answer those, so parsing falls back to filling protocol defaults.

use jupyter_protocol::{Header, JupyterMessage, JupyterMessageContent};
use jupyter_zmq_client::{Connection, RawMessage, RuntimeError};
use serde_json::{json, Value};

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed; the channel is unusable.
    #[error("socket error: {0}")]
    Socket(#[from] zeromq::ZmqError),
    /// The message was malformed or badly signed; it is dropped and logged.
    #[error("rejected message: {0}")]
    Rejected(String),
}

/// Reads the next message from a kernel-side socket.
pub async fn read_message<S: zeromq::SocketRecv>(
    conn: &mut Connection<S>,
) -> Result<JupyterMessage, WireError> {
    let multipart = conn.socket.recv().await?;
    let raw = RawMessage::from_multipart(multipart, &conn.mac).map_err(|e| match e {
        RuntimeError::VerifyError(_) => WireError::Rejected("bad HMAC signature".into()),
        other => WireError::Rejected(other.to_string()),
    })?;
    decode(raw).map_err(WireError::Rejected)
}

fn decode(raw: RawMessage) -> Result<JupyterMessage, String> {
    let part = |i: usize| -> Result<Value, String> {
        let bytes = raw.jparts.get(i).ok_or("too few message parts")?;
        serde_json::from_slice(bytes).map_err(|e| format!("part {i} is not JSON: {e}"))
    };
    let header: Header =
        serde_json::from_value(part(0)?).map_err(|e| format!("bad header: {e}"))?;
    let parent_header = serde_json::from_value(part(1)?).ok();
    let metadata = part(2)?;
    let mut content = part(3)?;
    let parsed =
        match JupyterMessageContent::from_type_and_content(&header.msg_type, content.clone()) {
            Ok(c) => c,
            Err(first_err) => {
                fill_defaults(&header.msg_type, &mut content);
                JupyterMessageContent::from_type_and_content(&header.msg_type, content)
                    .map_err(|_| format!("bad {} content: {first_err}", header.msg_type))?
            }
        };
    Ok(JupyterMessage {
        zmq_identities: raw.zmq_identities,
        header,
        parent_header,
        metadata,
        content: parsed,
        buffers: raw.jparts.get(4..).map(<[_]>::to_vec).unwrap_or_default(),
        channel: None,
    })
}

/// Fills fields the protocol documents as optional but the crate requires.
fn fill_defaults(msg_type: &str, content: &mut Value) {
    let Some(obj) = content.as_object_mut() else {
        return;
    };
    let defaults = match msg_type {
        "history_request" => json!({
            "output": false, "raw": true, "session": 0, "start": 0, "stop": 0,
            "n": 0, "unique": false, "pattern": "*"
        }),
        "execute_request" => json!({
            "silent": false, "store_history": true, "user_expressions": {},
            "allow_stdin": false, "stop_on_error": true
        }),
        "inspect_request" => json!({ "detail_level": 0 }),
        "shutdown_request" => json!({ "restart": false }),
        _ => return,
    };
    if let Some(d) = defaults.as_object() {
        for (k, v) in d {
            if !obj.contains_key(k) || obj[k].is_null() && k != "session" {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_search_without_n_is_accepted() {
        let mut content = json!({"hist_access_type": "search", "pattern": "*exit*", "output": false, "raw": true});
        assert!(
            JupyterMessageContent::from_type_and_content("history_request", content.clone())
                .is_err()
        );
        fill_defaults("history_request", &mut content);
        let parsed =
            JupyterMessageContent::from_type_and_content("history_request", content).unwrap();
        assert!(matches!(
            parsed,
            JupyterMessageContent::HistoryRequest(jupyter_protocol::HistoryRequest::Search {
                n: 0,
                unique: false,
                ..
            })
        ));
    }
}
