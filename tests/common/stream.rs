//! Reading a JetStream stream back, for the shipping tests' checks.

use async_nats::jetstream;

/// Every message of the stream: (stream sequence, Applog-Seq, Applog-Log, Nats-Msg-Id, payload).
pub fn stream_content(urls: &str, stream: &str) -> Vec<(u64, u64, String, String, Vec<u8>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addrs: Vec<async_nats::ServerAddr> =
            urls.split(',').map(|u| u.parse().unwrap()).collect();
        let client = async_nats::connect(addrs).await.unwrap();
        let js = jetstream::new(client);
        let mut s = js.get_stream(stream).await.unwrap();
        let info = s.info().await.unwrap().clone();
        let mut out = Vec::new();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            if info.state.messages == 0 {
                break;
            }
            let m = s.get_raw_message(seq).await.unwrap();
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
        out
    })
}
