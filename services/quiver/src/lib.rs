//! The client side of the `quiver` command line that the load generators (`quiver-bench`) share
//! with it: where the services are, a retrying producer, sending rows through several producers,
//! the demo's generated transactions, and a snapshot over Arrow Flight. The CLI's commands and the
//! servers stay in the binary (`src/main.rs`); nothing here starts a server.

pub mod addresses;
pub mod demo;
pub mod producer;
pub mod progress;
pub mod send;
pub mod snapshot_exchange;

/// A failed RPC as a readable error: its message, not its debug form.
pub fn rpc_error(what: &str, status: tonic::Status) -> anyhow::Error {
    // A plaintext client talking to a TLS port sees only HTTP/2 garbage.
    let hint = if status.message().contains("h2 protocol error") {
        " (is the server TLS? then pass --ca-cert or QUIVER_CA_CERT)"
    } else {
        ""
    };
    anyhow::anyhow!(
        "{what} failed ({:?}): {}{hint}",
        status.code(),
        status.message()
    )
}
