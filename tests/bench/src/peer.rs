//! `--peer BIN`: the same traffic through our gateway and another gateway (Noveum AI Gateway:
//! `PORT`, `OPENAI_BASE_URL`, `ANTHROPIC_BASE_URL`, `x-provider`), OpenAI clients to OpenAI (our
//! fast path) and to Anthropic (translated), measured alternately in one run on the memory store:
//! max throughput, CPU per request at max, and added p50 at a fixed rate.

use crate::{
    CHAT, Cpu, HClient, Scenario, body, fixed_rate, free_port, max_throughput, pct, start_gateway,
    wait_listening,
};
use std::net::SocketAddr;
use std::time::Duration;

/// Starts the peer on a free port and waits until it accepts connections.
async fn start_peer(bin: &str, mock_addr: SocketAddr) -> (tokio::process::Child, String, u32) {
    let port = free_port();
    let child = tokio::process::Command::new(bin)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("OPENAI_BASE_URL", format!("http://{mock_addr}/openai/v1"))
        .env(
            "ANTHROPIC_BASE_URL",
            format!("http://{mock_addr}/anthropic"),
        )
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the peer {bin}: {e}"));
    let pid = child.id().expect("the peer exited at once");
    wait_listening(port).await;
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
    let (_ours, ours_url, ours_pid) = start_gateway(gateway, "memory", None, mock_addr).await;
    let (_peer, peer_url, peer_pid) = start_peer(peer_bin, mock_addr).await;
    let _ = crate::PEER.set(peer_url.clone());
    println!(
        "ours vs {peer_bin}, OpenAI clients to OpenAI and to Anthropic, 3 alternating rounds each"
    );
    let sides = [(ours_url.as_str(), ours_pid), (peer_url.as_str(), peer_pid)];
    alternate(client, ["ours", "peer"], sides, rate, secs).await;
}

/// `--compare BIN`: our gateway against another build of it (before / after a change), all four
/// chat scenarios, same config and environment.
pub(crate) async fn compare_builds(
    client: &HClient,
    gateway: &str,
    other: &str,
    mock_addr: SocketAddr,
    rate: u64,
    secs: u64,
) {
    let (_a, a_url, a_pid) = start_gateway(gateway, "memory", None, mock_addr).await;
    let (_b, b_url, b_pid) = start_gateway(other, "memory", None, mock_addr).await;
    println!("A: {gateway}; B: {other}; memory store, 3 alternating rounds each");
    let sides = [(a_url.as_str(), a_pid), (b_url.as_str(), b_pid)];
    alternate(client, ["A", "B"], sides, rate, secs).await;
}

/// Measures each chat scenario on two gateways in turn, three rounds: max throughput (32 connections),
/// gateway CPU per request at max, and p50 at `rate`. Ratios are first / second.
async fn alternate(
    client: &HClient,
    names: [&str; 2],
    sides: [(&str, u32); 2],
    rate: u64,
    secs: u64,
) {
    let [a, b] = names;
    println!(
        "{:<42} {:>10} {:>10} {:>6} {:>11} {:>11} {:>6} {:>9} {:>9}",
        "scenario",
        format!("{a} req/s"),
        format!("{b} req/s"),
        "x",
        format!("{a} us@max"),
        format!("{b} us@max"),
        "x",
        format!("{a} p50"),
        format!("{b} p50"),
    );
    for (name, model, stream) in CHAT {
        *crate::PEER_PROVIDER
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = if model.starts_with("claude") {
            "anthropic"
        } else {
            "openai"
        };
        let s = Scenario {
            name,
            path: "/v1/chat/completions",
            model,
            stream,
            direct: "",
        };
        let mut tput = [0.0f64; 2];
        let mut cpu = [0.0f64; 2];
        let mut lat: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for _round in 0..3 {
            for (i, (base, pid)) in sides.into_iter().enumerate() {
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
            "{name:<42} {:>10.0} {:>10.0} {:>5.2}x {:>9.1}us {:>9.1}us {:>5.2}x {:>7.3}ms {:>7.3}ms",
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
