//! `roster-emulator icewarp|kerio --data FIXTURE.toml --listen ADDR [--tls CERT KEY]`: serves an emulated
//! IceWarp Server XML API (`roster_testkit::icewarp`) or Kerio Connect Administration API
//! (`roster_testkit::kerio`) until stopped, for trying Roster without a real server and for the
//! benchmarks. `--tarpit-seconds N` sets IceWarp's wrong-password delay (default 0).

use std::path::PathBuf;
use std::time::Duration;

use roster_testkit::http::TlsFiles;
use roster_testkit::{icewarp, kerio};

const USAGE: &str = "usage: roster-emulator icewarp --data FIXTURE.toml --listen ADDR [--tls CERT KEY] [--tarpit-seconds N]
       roster-emulator kerio --data FIXTURE.toml --listen ADDR [--tls CERT KEY]";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roster-emulator: {e}\n{USAGE}");
            std::process::ExitCode::from(2)
        }
    }
}

#[derive(PartialEq)]
enum Server {
    Icewarp,
    Kerio,
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let server = match args.next().as_deref() {
        Some("icewarp") => Server::Icewarp,
        Some("kerio") => Server::Kerio,
        _ => return Err("the emulated servers are `icewarp` and `kerio`".into()),
    };
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
            "--tarpit-seconds" if server == Server::Icewarp => {
                tarpit = value()?
                    .parse()
                    .map_err(|e| format!("--tarpit-seconds: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let data = data.ok_or("--data is required")?;
    let listen = listen.ok_or("--listen is required")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let cannot = |e: std::io::Error| format!("cannot serve on {listen}: {e}");
    runtime.block_on(async {
        let files = tls.as_ref().map(|(cert, key)| TlsFiles { cert, key });
        let served = match server {
            Server::Icewarp => {
                let fixture = icewarp::Fixture::load(&data).map_err(|e| e.to_string())?;
                let emulator = icewarp::IcewarpEmulator::start(fixture, &listen, files)
                    .await
                    .map_err(cannot)?;
                emulator.controls().set_tarpit(Duration::from_secs(tarpit));
                println!(
                    "IceWarp emulator: {scheme}://{}/icewarpapi/ (settings: server = {:?})",
                    emulator.addr(),
                    emulator.server_setting()
                );
                tokio::spawn(emulator.wait())
            }
            Server::Kerio => {
                let fixture = kerio::Fixture::load(&data).map_err(|e| e.to_string())?;
                let emulator = kerio::KerioEmulator::start(fixture, &listen, files)
                    .await
                    .map_err(cannot)?;
                println!(
                    "Kerio Connect emulator: {} (settings: server = {:?})",
                    emulator.url(),
                    emulator.server_setting()
                );
                tokio::spawn(emulator.wait())
            }
        };
        tokio::select! {
            _ = served => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    })
}
