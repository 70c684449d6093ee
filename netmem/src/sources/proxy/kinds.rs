//! The proxy kinds netmem reads, one entry each: how a running one is
//! found, how the paths given with its flag are read, its flag, and the
//! buffer settings (knobs) it names, with what each means. The flags
//! (`cmd/args/proxy.rs`), [`super::Proxies`], the doctor's advice and the
//! outputs take what is kind-specific from here; a second kind is a second
//! entry and its reader (ARCHITECTURE.md, "Where a new piece goes").

use std::path::PathBuf;

use super::{haproxy, nginx, Detection, Proxy};
use crate::model::proxy::{knob_of, Knob, Meaning};

/// One proxy kind.
pub struct Kind {
    /// `haproxy`: the kind's name in views, JSON (`proxy`), metrics and logs.
    pub name: &'static str,
    /// `HAProxy`: as people write it, in advice.
    pub display: &'static str,
    /// Its flag on the command line.
    pub flag: Flag,
    /// Its buffer settings, by the names it reads them under.
    pub knobs: &'static [Knob],
    /// Where its knobs are set, for advice: `in the global section`.
    pub knobs_where: &'static str,
    /// The setting that makes it close a connection with a reset (SO_LINGER
    /// 0: unsent data dropped, no orphan left), set in the frontend or
    /// backend section whose connections it is, when it has one: `option
    /// nolinger`.
    pub no_linger: Option<&'static str>,
    /// Its settings behind a listener's accept queue, for advice.
    pub accept: Accept,
    /// Running proxies of this kind in the traced namespace (`netns`), or
    /// in every one (`all`).
    pub detect: fn(netns: u32, all: bool) -> Detection,
    /// A reader of the paths given with its flag, naming the sockets of
    /// `netns` (entered through `enter` where the kind needs it); `once`:
    /// read a single time (see [`super::Proxies::new`]).
    pub explicit: Explicit,
}

/// A proxy's settings behind its listeners' accept queues: the backlog it
/// passes to listen() (which the kernel caps at `net.core.somaxconn`),
/// and the limit at which it stops accepting, after which connections
/// wait in the queue until it fills.
pub struct Accept {
    /// `backlog N` in the frontend: as advice says it, with its default.
    pub backlog: &'static str,
    /// `maxconn` (global and per frontend).
    pub stops_accepting: &'static str,
}

/// A kind's reader of its flag's paths: (paths, netns, enter, once).
pub type Explicit = fn(&[PathBuf], u32, Option<PathBuf>, bool) -> Box<dyn Proxy>;

/// A kind's flag: `--NAME VALUE...` (repeatable), `off`, or `auto`.
pub struct Flag {
    /// `haproxy` (`--haproxy`).
    pub long: &'static str,
    pub value_name: &'static str,
    pub help: &'static str,
    /// Said when a value is empty.
    pub empty: &'static str,
}

impl Kind {
    /// Its knob of meaning `m`: `tune.rcvbuf.server`.
    pub fn knob(&self, m: Meaning) -> Option<&'static str> {
        knob_of(self.knobs, m).map(|k| k.name)
    }
}

/// Every kind, in the order they are looked for.
pub static KINDS: &[Kind] = &[Kind {
    name: "haproxy",
    display: "HAProxy",
    flag: Flag {
        long: "haproxy",
        value_name: "SOCKET|ADDR:PORT|CONFIG|off",
        help: "Name groups after HAProxy's frontends and backend/servers, read from its stats socket (runtime API: a UNIX socket, or a TCP ADDR:PORT reached inside the traced namespace), its configuration (a file or a directory), or both (repeat the flag); `off` to name none. By default a running haproxy in the traced namespace is found through its command line (-f) and its configuration's `stats socket`",
        empty: "give a stats socket (a path or ADDR:PORT), a configuration file or directory, or `off`",
    },
    knobs: haproxy::KNOBS,
    knobs_where: "in the global section",
    // HAProxy's documentation recommends it for connections left in
    // FIN_WAIT1 by clients that vanished.
    no_linger: Some("option nolinger"),
    accept: Accept {
        // HAProxy passes the frontend's maxconn when backlog is unset.
        backlog: "`backlog N` in the frontend (unset: the frontend's maxconn)",
        stops_accepting: "`maxconn` (global, and the frontend's): at it HAProxy stops accepting",
    },
    detect: haproxy::detect,
    explicit: |paths, netns, enter, once| {
        Box::new(haproxy::HaProxy::explicit(paths, netns, enter, once))
    },
}, Kind {
    name: "nginx",
    display: "nginx",
    flag: Flag {
        long: "nginx",
        value_name: "CONFIG|off",
        help: "Name groups after nginx's `server` blocks (`server NAME`, by their `listen` ports) and upstreams (`upstream NAME/ADDR:PORT`, from `upstream` blocks and `proxy_pass`), read from its configuration (a file, or a directory holding nginx.conf; its `include`s followed); `off` to name none. By default a running nginx master in the traced namespace is found, and its configuration read from its command line's -c/-p (else /etc/nginx/nginx.conf) through its own root",
        empty: "give nginx's configuration file, or `off`",
    },
    knobs: nginx::KNOBS,
    knobs_where: "(`sndbuf=`/`rcvbuf=` are parameters of the server block's `listen`; proxy_buffer_size goes in the http, server or location block)",
    // nginx closes a connection whose send timed out (a client that
    // stopped reading) with a reset when told to: no orphan is left.
    no_linger: Some("reset_timedout_connection on"),
    accept: Accept {
        // NGX_LISTEN_BACKLOG on Linux.
        backlog: "`backlog=N` on the server block's `listen` (unset: 511)",
        stops_accepting: "`worker_connections` (events block, per worker): a worker at it stops accepting",
    },
    detect: nginx::detect,
    explicit: |paths, netns, _enter, once| {
        if paths.len() > 1 {
            log::warn!(
                "--nginx names one configuration: {} is read, the rest are not",
                paths[0].display()
            );
        }
        Box::new(nginx::Nginx::explicit(&paths[0], netns, once))
    },
}];

/// The kind called `name` (a view's or a recording's `proxy`).
pub fn by_name(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}
