//! `applog completions SHELL` and `applog man`: shell completion scripts and man pages, made
//! from the same definitions as the command line itself.

use std::path::PathBuf;

use clap::CommandFactory;

use crate::{Cli, Failure, Out};

/// Print a completion script for SHELL, made from the tool's own flags.
///
/// Bash: `applog completions bash > /etc/bash_completion.d/applog` (or source it from
/// ~/.bashrc). Zsh: put `applog completions zsh` into a file `_applog` in a directory of
/// $fpath. Fish: `applog completions fish > ~/.config/fish/completions/applog.fish`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_name = "SHELL", value_enum)]
    shell: clap_complete::Shell,
}

/// Print the man page in roff (`applog man | man -l -`), or with --dir write one page per
/// command (applog.1, applog-tail.1, ...) into a directory.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write applog.1 and one page per command (applog-<command>.1) into DIR (which must
    /// exist), instead of printing applog.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> Result<(), Failure> {
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "applog", &mut buf);
    let mut out = Out::new();
    out.bytes(&buf)?;
    out.finish()
}

pub fn man(args: ManArgs) -> Result<(), Failure> {
    let cmd = Cli::command();
    match args.dir {
        Some(dir) => {
            clap_mangen::generate_to(cmd, &dir).map_err(|source| Failure::Io {
                what: "could not write the man pages",
                source: std::io::Error::new(source.kind(), format!("{}: {source}", dir.display())),
            })?;
            let mut out = Out::new();
            writeln!(out, "wrote the man pages into {}", dir.display())?;
            out.finish()
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(Failure::output)?;
            let mut out = Out::new();
            out.bytes(&buf)?;
            out.finish()
        }
    }
}
