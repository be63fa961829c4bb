//! `roster generate` (hidden): shell completions and man pages from the clap definitions, for the Debian
//! package (`scripts/package.sh` runs the binary it packages).
//!
//! Why a subcommand of the binary rather than a build script or an xtask: the definitions live in this
//! binary crate (`cli.rs`), which a build script can't link, and an xtask would need them moved into a
//! library; the binary generating its own pages also guarantees they describe exactly the binary that is
//! shipped beside them. Hidden, so it is neither in `--help`, nor in the man pages, nor completed.

use crate::cli::{Args, GenerateCommand};
use anyhow::{Context, Result};
use clap::CommandFactory;

pub fn run(cmd: &GenerateCommand) -> Result<()> {
    match cmd {
        GenerateCommand::Completions { shell } => {
            // Into memory first: clap_complete panics when its writer fails (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Args::command(), "roster", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
                .context("writing the completion script to standard output")?;
        }
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("creating {}; give a directory you can write", dir.display())
            })?;
            // One page per command (roster.1, roster-serve.1, roster-users-add.1…), hidden ones left out.
            clap_mangen::generate_to(Args::command(), dir)
                .with_context(|| format!("writing the man pages into {}", dir.display()))?;
        }
    }
    Ok(())
}
