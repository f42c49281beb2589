//! The proxy's HTTP/1.1 server: each client connection served by hyper, each request
//! routed by one comparison (`/metrics` or forwarded). No router framework sits between:
//! per request it cost a boxed future, a routing table walk and request extensions, work
//! that showed in the proxy's CPU profile for nothing a proxy with two routes needs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::{Proxy, forward};

/// Serves the proxy on `listener` until `shutdown` completes; then stops accepting and
/// waits for the requests in flight to finish.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                wait_after_accept_error(&error).await;
                continue;
            }
        };
        // Chunks go out as they come: no waiting to fill a segment.
        let _ = tcp.set_nodelay(true);
        let proxy = proxy.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(route(proxy, request.map(Body::new)).await) }
        });
        let connection =
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is the request's outcome, counted there.
            let _ = connection.await;
        });
    }
    graceful.shutdown().await;
}

/// An accept that failed: a connection reset before it was taken is nothing; running out
/// of file descriptors or memory is waited out for a second, so the loop does not spin.
async fn wait_after_accept_error(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!("the proxy cannot accept a connection: {error}; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// `/metrics` (GET or HEAD) is the proxy's own; every other request is forwarded.
pub async fn route(proxy: Arc<Proxy>, request: Request) -> Response {
    if request.uri().path() != "/metrics" {
        return forward::handle(State(proxy), request).await;
    }
    match *request.method() {
        Method::GET | Method::HEAD => proxy.metrics_response(request.headers()),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET,HEAD")],
        )
            .into_response(),
    }
}
