//! `roster-emulator icewarp --data FIXTURE.toml --listen ADDR [--tls CERT KEY]`: serves an emulated
//! IceWarp Server XML API (see `roster_testkit::icewarp`) until stopped, for trying Roster without a
//! real server and for the benchmarks. `--tarpit-seconds N` sets the wrong-password delay (default 0).

use std::path::PathBuf;
use std::time::Duration;

use roster_testkit::icewarp::{Fixture, IcewarpEmulator, TlsFiles};

const USAGE: &str = "usage: roster-emulator icewarp --data FIXTURE.toml --listen ADDR [--tls CERT KEY] [--tarpit-seconds N]";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roster-emulator: {e}\n{USAGE}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("icewarp") {
        return Err("the only emulated server is `icewarp`".into());
    }
    let (mut data, mut listen, mut tls, mut tarpit) = (None, None, None, 0u64);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--data" => data = Some(PathBuf::from(value()?)),
            "--listen" => listen = Some(value()?),
            "--tls" => {
                let cert = PathBuf::from(value()?);
                let key = PathBuf::from(value()?);
                tls = Some((cert, key));
            }
            "--tarpit-seconds" => {
                tarpit = value()?
                    .parse()
                    .map_err(|e| format!("--tarpit-seconds: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let data = data.ok_or("--data is required")?;
    let listen = listen.ok_or("--listen is required")?;
    let fixture = Fixture::load(&data).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let files = tls.as_ref().map(|(cert, key)| TlsFiles { cert, key });
        let emulator = IcewarpEmulator::start(fixture, &listen, files)
            .await
            .map_err(|e| format!("cannot serve on {listen}: {e}"))?;
        emulator.controls().set_tarpit(Duration::from_secs(tarpit));
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!(
            "IceWarp emulator: {scheme}://{}/icewarpapi/ (settings: server = {:?})",
            emulator.addr(),
            emulator.server_setting()
        );
        tokio::select! {
            () = emulator.wait() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
