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
    let (_floor, floor_url, floor_pid) = crate::start_floor(mock_addr).await;
    let _ = crate::PEER.set(peer_url.clone());
    println!(
        "ours vs {peer_bin}, OpenAI clients to OpenAI and to Anthropic, 3 alternating rounds each;\n\
         'floor': a proxy on our stack that only forwards bytes (to the OpenAI mock in every\n\
         scenario), the least any proxy pays here; x = against ours"
    );
    let sides = [
        ("ours", ours_url.as_str(), ours_pid),
        ("peer", peer_url.as_str(), peer_pid),
        ("floor", floor_url.as_str(), floor_pid),
    ];
    alternate(client, &sides, rate, secs).await;
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
    println!("A: {gateway}; B: {other}; memory store, 3 alternating rounds each; x = against A");
    let sides = [("A", a_url.as_str(), a_pid), ("B", b_url.as_str(), b_pid)];
    alternate(client, &sides, rate, secs).await;
}

/// Measures each chat scenario on each side (name, URL, pid) in turn, three rounds: max
/// throughput (32 connections), CPU per request at max, and p50 at `rate`. Each row gives one
/// side, with ratios against the first: the first side's figure over this side's.
async fn alternate(client: &HClient, sides: &[(&str, &str, u32)], rate: u64, secs: u64) {
    println!(
        "{:<42} {:>6} {:>10} {:>6} {:>10} {:>6} {:>9}",
        "scenario", "side", "req/s", "x", "us@max", "x", "p50"
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
        let n = sides.len();
        let mut tput = vec![0.0f64; n];
        let mut cpu = vec![0.0f64; n];
        let mut lat: Vec<Vec<Duration>> = vec![Vec::new(); n];
        for _round in 0..3 {
            for (i, (_, base, pid)) in sides.iter().enumerate() {
                let url = format!("{base}{}", s.path);
                let _ = fixed_rate(client, &url, body(&s, s.model), 200, 1).await;
                lat[i].extend(fixed_rate(client, &url, body(&s, s.model), rate, secs).await);
                let c = Cpu::now(*pid, *pid);
                let max = max_throughput(client, &url, body(&s, s.model), 32, secs).await;
                tput[i] += max / 3.0;
                cpu[i] += c.per_request(max * secs as f64)[0] / 3.0;
            }
        }
        for (i, (side, _, _)) in sides.iter().enumerate() {
            println!(
                "{:<42} {side:>6} {:>10.0} {:>5.2}x {:>8.1}us {:>5.2}x {:>7.3}ms",
                if i == 0 { name } else { "" },
                tput[i],
                tput[0] / tput[i],
                cpu[i],
                cpu[0] / cpu[i],
                pct(&mut lat[i], 0.5),
            );
        }
    }
}
