//! The proxy flags: one per proxy kind (`--haproxy`, `--nginx`), declared from
//! the kinds' registry (`sources/proxy/kinds.rs`), so a second kind's flag
//! comes with its entry there, and every command that names groups after a
//! proxy (snapshot, doctor and the live ones, through `Owners`) takes it.

use anyhow::Result;
use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::sources::proxy::kinds::{Kind, KINDS};
use crate::sources::proxy::{KindSpec, ProxySpec};

/// `--haproxy`, `--nginx`: every kind's flag, and what each was given.
#[derive(Clone)]
pub struct ProxyArg {
    given: Vec<(&'static Kind, Vec<String>)>,
}

/// A kind's flag as clap declares it.
fn flag(k: &'static Kind) -> Arg {
    let empty = k.flag.empty;
    Arg::new(k.flag.long)
        .long(k.flag.long)
        .value_name(k.flag.value_name)
        .help(k.flag.help)
        .action(ArgAction::Append)
        .value_parser(move |s: &str| -> Result<String, String> {
            if s.trim().is_empty() {
                return Err(empty.into());
            }
            Ok(s.to_string())
        })
}

impl clap::FromArgMatches for ProxyArg {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let given = KINDS
            .iter()
            .map(|k| {
                let v = m
                    .get_many::<String>(k.flag.long)
                    .map(|v| v.cloned().collect())
                    .unwrap_or_default();
                (k, v)
            })
            .collect();
        Ok(ProxyArg { given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for ProxyArg {
    fn augment_args(cmd: Command) -> Command {
        KINDS.iter().fold(cmd, |c, k| c.arg(flag(k)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl ProxyArg {
    /// Which proxies name the groups.
    pub fn spec(&self) -> Result<ProxySpec> {
        let mut spec = ProxySpec::default();
        for (k, v) in &self.given {
            if v.len() > 1 && v.iter().any(|h| h == "off" || h == "auto") {
                anyhow::bail!(
                    "--{} off (or auto) cannot be combined with paths",
                    k.flag.long
                );
            }
            spec = spec.with(k.name, KindSpec::from_args(v));
        }
        Ok(spec)
    }
}
