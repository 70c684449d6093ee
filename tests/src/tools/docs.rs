//! `netmem-docs DIR [VERSION]`: writes netmem's man pages (DIR/man: netmem.1 and
//! netmem-SUBCOMMAND.1) and shell completions (DIR/completions: bash, zsh,
//! fish) from the library's own command line, so they cannot drift from
//! the binary's parser. `cargo xtask dist` runs it for the .deb, with the
//! shipped binary's version line (its commit and date, not this build's).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: netmem-docs DIR [VERSION]")?);
    man_pages(&dir.join("man"), args.next())?;
    completions(&dir.join("completions"))
}

fn man_pages(dir: &Path, version: Option<String>) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = netmem::cli::command();
    if let Some(v) = version {
        cmd = cmd.version(leak(v));
    }
    let version = cmd.get_version().unwrap_or_default().to_string();
    let page = |c: clap::Command, file: &str| -> Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        std::fs::write(dir.join(file), buf).with_context(|| format!("write {file}"))
    };
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("netmem-{}", sub.get_name());
        // A page of its own reads as `netmem trace`, versioned like netmem(1).
        let c = sub
            .clone()
            .name(leak(name.clone()))
            .bin_name(format!("netmem {}", sub.get_name()))
            .version(leak(version.clone()));
        page(c, &format!("{name}.1"))?;
    }
    page(cmd, "netmem.1")
}

/// clap (without its `string` feature) takes names as `&'static str`;
/// this process lives only to write the pages.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn completions(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for (shell, file) in [
        (Shell::Bash, "netmem.bash"),
        (Shell::Zsh, "_netmem"),
        (Shell::Fish, "netmem.fish"),
    ] {
        let mut f = std::fs::File::create(dir.join(file))?;
        clap_complete::generate(shell, &mut netmem::cli::command(), "netmem", &mut f);
    }
    Ok(())
}
