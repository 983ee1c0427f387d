//! `--peer BIN`: the same fast-path traffic through our gateway and another gateway (Noveum AI
//! Gateway: `PORT`, `OPENAI_BASE_URL`, `x-provider: openai`), measured alternately in one run on
//! the memory store: max throughput, CPU per request at max, and added p50 at a fixed rate.

use crate::{Cpu, HClient, Scenario, body, fixed_rate, max_throughput, pct, start_gateway};
use std::net::SocketAddr;
use std::time::Duration;

/// Starts the peer on a free port and waits until it accepts connections.
async fn start_peer(bin: &str, mock_addr: SocketAddr) -> (tokio::process::Child, String, u32) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(bin)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("OPENAI_BASE_URL", format!("http://{mock_addr}/openai/v1"))
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the peer {bin}: {e}"));
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = child.id().unwrap();
    (child, format!("http://127.0.0.1:{port}"), pid)
}

pub(crate) async fn compare(
    client: &HClient,
    gateway: &str,
    peer_bin: &str,
    mock_addr: SocketAddr,
    rate: u64,
    secs: u64,
) {
    let (_ours, ours_url, ours_pid) =
        start_gateway(client, gateway, "memory", None, mock_addr).await;
    let (_peer, peer_url, peer_pid) = start_peer(peer_bin, mock_addr).await;
    let _ = crate::PEER.set(peer_url.clone());
    println!("ours vs {peer_bin}, fast path (OpenAI -> OpenAI), 3 alternating rounds each");
    println!(
        "{:<38} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6} {:>9} {:>9}",
        "scenario",
        "ours req/s",
        "peer req/s",
        "x",
        "ours us@max",
        "peer us@max",
        "x",
        "ours p50",
        "peer p50"
    );
    for stream in [false, true] {
        let s = Scenario {
            name: "",
            path: "/v1/chat/completions",
            model: "gpt-4o-mini",
            stream,
            direct: "",
        };
        let mut tput = [0.0f64; 2];
        let mut cpu = [0.0f64; 2];
        let mut lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for _round in 0..3 {
            for (i, (base, pid)) in [(&ours_url, ours_pid), (&peer_url, peer_pid)]
                .into_iter()
                .enumerate()
            {
                let url = format!("{base}{}", s.path);
                let _ = fixed_rate(client, &url, body(&s, s.model), 200, 1).await;
                lat[i].extend(fixed_rate(client, &url, body(&s, s.model), rate, secs).await);
                let c = Cpu::now(pid, pid);
                let max = max_throughput(client, &url, body(&s, s.model), 32, secs).await;
                tput[i] += max / 3.0;
                cpu[i] += c.per_request(max * secs as f64)[0] / 3.0;
            }
        }
        println!(
            "{:<38} {:>10.0} {:>10.0} {:>5.2}x {:>9.1}us {:>9.1}us {:>5.2}x {:>7.3}ms {:>7.3}ms",
            if stream {
                "fast path, streamed"
            } else {
                "fast path"
            },
            tput[0],
            tput[1],
            tput[0] / tput[1],
            cpu[0],
            cpu[1],
            cpu[0] / cpu[1],
            pct(&mut lat[0], 0.5),
            pct(&mut lat[1], 0.5),
        );
    }
}
