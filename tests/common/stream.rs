//! Reading a JetStream stream back, for the shipping tests' checks.

use std::time::{Duration, Instant};

use async_nats::jetstream;

/// One message as the checks see it: (stream sequence, Applog-Seq, Applog-Log, Nats-Msg-Id,
/// payload).
pub type Message = (u64, u64, String, String, Vec<u8>);

/// How long a cluster may answer "temporarily unavailable" (a node restarted, a leader being
/// elected) before the check gives up.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(60);

/// Every message of the stream, read again from the start while the cluster answers with a
/// transient error.
pub fn stream_content(urls: &str, stream: &str) -> Vec<Message> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addrs: Vec<async_nats::ServerAddr> =
            urls.split(',').map(|u| u.parse().unwrap()).collect();
        let client = async_nats::connect(addrs).await.unwrap();
        let js = jetstream::new(client);
        let started = Instant::now();
        loop {
            match read_all(&js, stream).await {
                Ok(out) => return out,
                Err(e) if started.elapsed() < UNAVAILABLE_FOR => {
                    eprintln!("reading stream {stream}: {e}; again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("reading stream {stream} for {UNAVAILABLE_FOR:?}: {e}"),
            }
        }
    })
}

async fn read_all(js: &jetstream::Context, stream: &str) -> Result<Vec<Message>, String> {
    let mut s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let info = s.info().await.map_err(|e| e.to_string())?.clone();
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return Ok(out);
    }
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let m = s.get_raw_message(seq).await.map_err(|e| e.to_string())?;
        let h = |n: &str| {
            m.headers
                .get(n)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_else(|| panic!("no {n} in message {seq}: {:?}", m.headers))
        };
        out.push((
            m.sequence,
            h("Applog-Seq").parse().unwrap(),
            h("Applog-Log"),
            m.headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_owned())
                .unwrap(),
            m.payload.to_vec(),
        ));
    }
    Ok(out)
}
