//! The transport layer over real connections: authentication from the
//! headers before any body is read (HTTP/2 and grpc-web), message caps by
//! declared length, the message timeout, streams per connection,
//! connections per peer, the handshake and idle timeouts, the fd limit.
//! A raw `h2` client (or a TCP socket) plays the misbehaving peer.

mod support;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use h2::client::SendRequest;
use support::{clients, guest, Db, TestServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};
use wasmwiz_proto::v1::{self, execute_request::Msg};

const MIB: u32 = 1 << 20;
/// Bounds waits for things that must happen (never a performance figure).
const PATIENCE: Duration = Duration::from_secs(30);

/// A gRPC message prefix declaring `len` bytes.
fn prefix(len: u32) -> Bytes {
    let mut p = vec![0u8];
    p.extend_from_slice(&len.to_be_bytes());
    Bytes::from(p)
}

type Driver = JoinHandle<Result<(), h2::Error>>;

/// An HTTP/2 connection; its driver task ends when the server closes it.
async fn h2_connect(addr: SocketAddr) -> (SendRequest<Bytes>, Driver) {
    try_h2_connect(addr).await.expect("an HTTP/2 connection")
}

async fn try_h2_connect(addr: SocketAddr) -> Option<(SendRequest<Bytes>, Driver)> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let (client, connection) = h2::client::handshake(tcp).await.ok()?;
    let driver = tokio::spawn(connection);
    Some((client.ready().await.ok()?, driver))
}

/// Connects and completes a health check, retrying while the server still
/// counts connections that are closing (the readiness probe's).
async fn served_h2_connection(addr: SocketAddr) -> (SendRequest<Bytes>, Driver) {
    for _ in 0..200 {
        if let Some((mut client, driver)) = try_h2_connect(addr).await {
            let (response, mut body) =
                grpc_call(&mut client, addr, "/grpc.health.v1.Health/Check", None).await;
            body.send_data(prefix(0), true).unwrap();
            if let Ok(Ok(response)) = tokio::time::timeout(PATIENCE, response).await {
                if response.status() == 200 {
                    return (client, driver);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no connection was served");
}

/// Opens a gRPC call to `path` with the body left open.
async fn grpc_call(
    client: &mut SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    *client = client.clone().ready().await.unwrap();
    client
        .send_request(request.body(()).unwrap(), false)
        .unwrap()
}

/// The grpc-status and grpc-message of a response (trailers-only or not).
async fn grpc_outcome(response: h2::client::ResponseFuture) -> (String, String) {
    let response = tokio::time::timeout(PATIENCE, response)
        .await
        .expect("the server answers")
        .unwrap();
    let outcome = |map: &http::HeaderMap| {
        let status = tonic::Status::from_header_map(map).expect("a grpc-status");
        (
            (status.code() as i32).to_string(),
            status.message().to_string(),
        )
    };
    if response.headers().contains_key("grpc-status") {
        return outcome(response.headers());
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    outcome(&body.trailers().await.unwrap().unwrap_or_default())
}

/// A value of the server's Prometheus text at `/metrics` (0 when absent,
/// or when the connection is refused).
async fn metric(addr: SocketAddr, line_prefix: &str) -> u64 {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut text = String::new();
    let asked = tcp
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await;
    if asked.is_err() || tcp.read_to_string(&mut text).await.is_err() {
        return 0;
    }
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn body_bytes_read(addr: SocketAddr) -> u64 {
    metric(addr, "wasmwiz_request_body_bytes_total ").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_huge_message_is_refused_over_http2_without_reading_it() {
    let server = TestServer::start().await;
    let (mut client, _driver) = h2_connect(server.addr).await;
    let (response, mut body) = grpc_call(
        &mut client,
        server.addr,
        "/wasmwiz.v1.ExecutionService/Run",
        None,
    )
    .await;
    body.send_data(prefix(200 * MIB), false).unwrap();
    body.send_data(Bytes::from(vec![7u8; 256 << 10]), false)
        .unwrap();
    let (code, message) = grpc_outcome(response).await;
    assert_eq!(code, "16", "UNAUTHENTICATED: {message}");
    assert!(
        body_bytes_read(server.addr).await < 64 << 10,
        "the server read the body of an unauthenticated call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_huge_message_is_refused_over_grpc_web_without_reading_it() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let declared = 200 * MIB;
    tcp.write_all(
        format!(
            "POST /wasmwiz.v1.ExecutionService/Run HTTP/1.1\r\nhost: x\r\n\
             content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
             content-length: {}\r\n\r\n",
            declared as u64 + 5
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tcp.write_all(&prefix(declared)).await.unwrap();
    tcp.write_all(&vec![7u8; 256 << 10]).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(n > 0, "closed before answering");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("grpc-status: 16"), "{head}");
    assert!(
        body_bytes_read(server.addr).await < 64 << 10,
        "the server read the body of an unauthenticated call"
    );
}

/// Reads one HTTP/1.1 response head from `tcp`.
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut byte))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_small_grpc_web_request_leaves_its_connection_usable() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let message = prefix(3)
        .to_vec()
        .into_iter()
        .chain([1u8, 2, 3])
        .collect::<Vec<_>>();
    let head = format!(
        "POST /wasmwiz.v1.AccountService/WhoAmI HTTP/1.1\r\nhost: x\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         content-length: {}\r\n\r\n",
        message.len()
    );
    // Headers first and the body a moment later, as Node's HTTP client may
    // send them: the server must not answer and close in between (the
    // client would get EPIPE instead of the answer). The pause is well
    // inside the time the server gives a refused body to arrive.
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    tcp.write_all(&message).await.unwrap();
    let answer = read_head(&mut tcp).await;
    assert!(answer.contains("grpc-status: 16"), "{answer}");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let next = read_head(&mut tcp).await;
    assert!(
        next.starts_with("http/1.1 200"),
        "the connection was closed after the refusal: {next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_chunked_grpc_web_request_leaves_its_connection_usable() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // Node's HTTP client sends a streamed body chunked, without a length.
    tcp.write_all(
        b"POST /wasmwiz.v1.AccountService/WhoAmI HTTP/1.1\r\nhost: x\r\n\
          content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
          transfer-encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    tcp.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut chunk = b"5\r\n".to_vec();
    chunk.extend_from_slice(&prefix(0));
    chunk.extend_from_slice(b"\r\n0\r\n\r\n");
    tcp.write_all(&chunk).await.unwrap();
    let answer = read_head(&mut tcp).await;
    assert!(answer.contains("grpc-status: 16"), "{answer}");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let next = read_head(&mut tcp).await;
    assert!(
        next.starts_with("http/1.1 200"),
        "the connection was closed after the refusal: {next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_answer_before_the_body_is_read_says_the_connection_closes() {
    let server = TestServer::start().await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let declared = MIB;
    tcp.write_all(
        format!(
            "POST /wasmwiz.v1.ExecutionService/Run HTTP/1.1\r\nhost: x\r\n\
             content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
             content-length: {}\r\n\r\n",
            declared as u64 + 5
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tcp.write_all(&prefix(declared)).await.unwrap();
    let answer = read_head(&mut tcp).await;
    assert!(answer.contains("grpc-status: 16"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_message_past_its_cap_is_refused_by_its_declared_length() {
    let server = TestServer::start().await;
    let (mut client, _driver) = h2_connect(server.addr).await;
    let (response, mut body) = grpc_call(
        &mut client,
        server.addr,
        "/grpc.health.v1.Health/Check",
        None,
    )
    .await;
    body.send_data(prefix(MIB), false).unwrap();
    let (code, message) = grpc_outcome(response).await;
    assert_eq!(code, "3", "INVALID_ARGUMENT: {message}");
    assert!(message.contains("unauthenticated"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_message_past_the_tier_is_refused_by_its_declared_length() {
    let server = TestServer::start().await;
    let key = server.create_key("free@test.local", "free", false).await;
    let tier = server.config.tier("free").unwrap();
    let cap = wasmwiz_server::transport::auth_layer::tier_message_bytes(&server.config, tier);
    let (mut client, _driver) = h2_connect(server.addr).await;
    let (response, mut body) = grpc_call(
        &mut client,
        server.addr,
        "/wasmwiz.v1.ExecutionService/Run",
        Some(&key),
    )
    .await;
    body.send_data(prefix(cap as u32 + 1), false).unwrap();
    body.send_data(Bytes::from(vec![7u8; 64 << 10]), false)
        .unwrap();
    let (code, message) = grpc_outcome(response).await;
    assert_eq!(code, "3", "INVALID_ARGUMENT: {message}");
    assert!(
        message.contains("free tier") && message.contains(&cap.to_string()),
        "{message}"
    );
}

/// Standard base64 (grpc-web-text bodies).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_web_text_message_past_the_tier_is_refused_by_its_declared_length() {
    let server = TestServer::start().await;
    let key = server.create_key("web@test.local", "free", false).await;
    let tier = server.config.tier("free").unwrap();
    let cap = wasmwiz_server::transport::auth_layer::tier_message_bytes(&server.config, tier);
    let mut message = prefix(cap as u32 + 1).to_vec();
    message.extend_from_slice(&[7u8; 1021]);
    let body = base64(&message);
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /wasmwiz.v1.ExecutionService/Run HTTP/1.1\r\nhost: x\r\n\
             content-type: application/grpc-web-text\r\nx-grpc-web: 1\r\n\
             authorization: Bearer {key}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len() + 4096
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(n > 0, "closed before answering");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.contains("grpc-status: 3"), "{head}");
    assert!(head.contains("free%20tier"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_message_is_capped_below_the_tier_size() {
    let server = TestServer::start().await;
    let (mut client, _driver) = h2_connect(server.addr).await;
    let (response, mut body) = grpc_call(
        &mut client,
        server.addr,
        "/wasmwiz.v1.AccountService/WhoAmI",
        Some(&server.admin_key),
    )
    .await;
    body.send_data(
        prefix(server.config.message_overhead_bytes as u32 + 1),
        false,
    )
    .unwrap();
    let (code, message) = grpc_outcome(response).await;
    assert_eq!(code, "3", "INVALID_ARGUMENT: {message}");
    assert!(message.contains("account or admin call"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_message_is_dropped_after_the_message_timeout() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.message_timeout_secs = 1).await;
    let (mut client, _driver) = h2_connect(server.addr).await;
    let (response, mut body) = grpc_call(
        &mut client,
        server.addr,
        "/wasmwiz.v1.ExecutionService/Run",
        Some(&server.admin_key),
    )
    .await;
    body.send_data(prefix(1000), false).unwrap();
    body.send_data(Bytes::from_static(b"0123456789"), false)
        .unwrap();
    let (code, message) = grpc_outcome(response).await;
    assert_eq!(code, "4", "DEADLINE_EXCEEDED: {message}");
    assert!(message.contains("did not complete"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_execute_stream_waiting_for_stdin_is_not_dropped() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.message_timeout_secs = 1).await;
    let c = clients(&server, Some(&server.admin_key)).await;
    let echo = guest("echo");
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::ExecuteRequest>(4);
    let mut exec = c.exec.clone();
    let call = tokio::spawn(async move {
        exec.execute(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let send = |msg| v1::ExecuteRequest { msg: Some(msg) };
    tx.send(send(Msg::Start(v1::ExecuteStart {
        source: Some(v1::execute_start::Source::ModuleSize(echo.len() as u64)),
        stream_stdin: true,
        ..Default::default()
    })))
    .await
    .unwrap();
    tx.send(send(Msg::ModuleChunk(echo))).await.unwrap();
    let mut events = call.await.unwrap().unwrap().into_inner();
    // Quiet between messages for well past the message timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tx.send(send(Msg::StdinChunk(b"still here".to_vec())))
        .await
        .unwrap();
    tx.send(send(Msg::StdinEof(true))).await.unwrap();
    let mut stdout = Vec::new();
    let mut finished = None;
    while let Some(event) = events.message().await.unwrap() {
        match event.event.unwrap() {
            v1::execute_event::Event::Stdout(bytes) => stdout.extend_from_slice(&bytes),
            v1::execute_event::Event::Finished(f) => finished = Some(f),
            _ => {}
        }
    }
    assert_eq!(stdout, b"still here");
    assert_eq!(finished.unwrap().outcome(), v1::Outcome::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_connection_are_capped() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.max_concurrent_streams = 2).await;
    let (mut client, _driver) = h2_connect(server.addr).await;
    let check = "/grpc.health.v1.Health/Check";
    // A first round trip: the client has the server's SETTINGS.
    let (warmup, mut warmup_body) = grpc_call(&mut client, server.addr, check, None).await;
    warmup_body.send_data(prefix(0), true).unwrap();
    assert_eq!(grpc_outcome(warmup).await.0, "0");
    // Two calls whose request bodies stay open hold both streams.
    let (first, mut first_body) = grpc_call(&mut client, server.addr, check, None).await;
    let (_second, _second_body) = grpc_call(&mut client, server.addr, check, None).await;
    let (third, mut third_body) = grpc_call(&mut client, server.addr, check, None).await;
    third_body.send_data(prefix(0), true).unwrap();
    let mut third = Box::pin(grpc_outcome(third));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.as_mut())
            .await
            .is_err(),
        "a third stream was opened past the cap"
    );
    first_body.send_data(prefix(0), true).unwrap();
    assert_eq!(grpc_outcome(first).await.0, "0");
    assert_eq!(
        third.await.0,
        "0",
        "the third call runs once a stream is free"
    );
}

/// True when the peer closes `tcp` (EOF or reset) without sending data.
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(PATIENCE, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // HTTP/2 frames the server may send first (SETTINGS, GOAWAY).
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_peer_are_capped() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.max_connections_per_ip = 2).await;
    let (a, a_driver) = served_h2_connection(server.addr).await;
    let (_b, _b_driver) = served_h2_connection(server.addr).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        closed_by_server(&mut third).await,
        "a third connection was served"
    );
    // Once one closes, its place is free again.
    drop(a);
    a_driver.abort();
    let mut served = false;
    for _ in 0..200 {
        if metric(
            server.addr,
            "wasmwiz_connections_refused_total{reason=\"per_ip\"} ",
        )
        .await
            >= 1
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a closed connection's place was not given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_the_preface_is_closed() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.handshake_timeout_secs = 1).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(closed_by_server(&mut tcp).await, "the connection was kept");
    assert!(
        metric(
            server.addr,
            "wasmwiz_connections_timed_out_total{reason=\"handshake\"} "
        )
        .await
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_its_http1_headers_is_closed() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.handshake_timeout_secs = 1).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"POST /wasmwiz.v1.ExecutionService/Run HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut tcp).await, "the connection was kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_and_an_open_stream_keeps_its_own() {
    let server = TestServer::start_with(Db::Sqlite, |c| c.idle_timeout_secs = 1).await;
    let check = "/grpc.health.v1.Health/Check";
    let (mut idle, idle_driver) = h2_connect(server.addr).await;
    let (response, mut body) = grpc_call(&mut idle, server.addr, check, None).await;
    body.send_data(prefix(0), true).unwrap();
    assert_eq!(grpc_outcome(response).await.0, "0");
    let (mut busy, busy_driver) = h2_connect(server.addr).await;
    let (open, mut open_body) = grpc_call(&mut busy, server.addr, check, None).await;
    tokio::time::timeout(PATIENCE, idle_driver)
        .await
        .expect("the idle connection is closed")
        .unwrap()
        .unwrap();
    // Well past the idle timeout, the connection with an open stream lives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !busy_driver.is_finished(),
        "a connection with an open stream was closed"
    );
    open_body.send_data(prefix(0), true).unwrap();
    assert_eq!(grpc_outcome(open).await.0, "0");
}

#[test]
fn the_fd_limit_is_raised_to_the_hard_limit() {
    use rlimit::Resource;
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE).unwrap();
    let lowered = soft.min(hard.saturating_sub(1)).max(256);
    rlimit::setrlimit(Resource::NOFILE, lowered, hard).unwrap();
    let raised = wasmwiz_server::transport::raise_fd_limit();
    assert_eq!(raised, hard);
    assert_eq!(rlimit::getrlimit(Resource::NOFILE).unwrap().0, hard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_the_tls_handshake_is_closed() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start_with(Db::Sqlite, |c| {
        c.tls_cert = Some(cert_path.clone());
        c.tls_key = Some(key_path.clone());
        c.handshake_timeout_secs = 1;
    })
    .await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // The first bytes of a TLS record header, then nothing.
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(closed_by_server(&mut tcp).await, "the connection was kept");
}
