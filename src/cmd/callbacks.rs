//! `pushprobe callbacks`: the endpoint to point Tencent's console at. Verifies
//! each push callback, prints it as a JSON line (secrets redacted) on stdout
//! and a human line on stderr; counts refusals and retries.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::callback::{self, ReceiverConfig, ReceiverState};
use crate::cli::CallbacksArgs;

pub async fn run(args: &CallbacksArgs) -> anyhow::Result<ExitCode> {
    let Some(key) = args.callback_key.key()? else {
        bail!(
            "no callback key: set PUSHPROBE_CALLBACK_KEY (or --callback-key-file) to the key from the console's callback template"
        );
    };
    let mut cfg = ReceiverConfig::new(key);
    cfg.path = args.path.clone();
    let (state, mut events) = ReceiverState::new(cfg);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "listening for push callbacks on http://{}{}",
        listener.local_addr()?,
        args.path.as_deref().unwrap_or("/ (any path)")
    );
    let printer = tokio::spawn(async move {
        while let Some(r) = events.recv().await {
            use std::io::Write;
            // A closed stdout (| head) must not stop the receiver.
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                callback::redacted_json(&r.event)
            );
            let dup = if r.duplicate { " (retry)" } else { "" };
            eprintln!("{}{dup}", callback::human_line(&r.event));
        }
    });
    let served = callback::serve(listener, state.clone(), async {
        crate::signal::wait_for_signal().await;
    })
    .await;
    printer.abort();
    let c = state.counters();
    eprintln!("{}", serde_json::to_string(&c)?);
    served?;
    Ok(ExitCode::SUCCESS)
}
