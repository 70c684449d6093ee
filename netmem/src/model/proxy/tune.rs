//! A proxy's own buffer settings. Each proxy kind names its settings
//! (its [`Knob`]s: HAProxy's `tune.bufsize`, `tune.rcvbuf.client`, ...);
//! what a setting means ([`Meaning`]: the proxy's own buffer, or one
//! side's socket receive or send buffer) is the same for every kind, so
//! the naming rule, the outputs and the doctor read a [`Tune`] by meaning
//! and take the names from the kind's knobs.

/// Which side of the proxy a group's sockets are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Accepted from clients (a frontend's `listen:` group).
    Client,
    /// Opened to servers (a `backend:` group).
    Server,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// What a proxy's buffer setting means, whatever the proxy calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Meaning {
    /// The proxy's own buffer per stream direction (not kernel memory).
    ProxyBuffer,
    /// The receive buffer (SO_RCVBUF) of one side's sockets.
    Rcvbuf(Side),
    /// The send buffer (SO_SNDBUF) of one side's sockets.
    Sndbuf(Side),
}

impl Meaning {
    /// Where a value of this meaning is kept in a [`Tune`].
    fn slot(self) -> usize {
        match self {
            Meaning::ProxyBuffer => 0,
            Meaning::Rcvbuf(Side::Client) => 1,
            Meaning::Sndbuf(Side::Client) => 2,
            Meaning::Rcvbuf(Side::Server) => 3,
            Meaning::Sndbuf(Side::Server) => 4,
        }
    }
}

/// One buffer setting of a proxy kind: its name where it is set (its
/// configuration's keyword) and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knob {
    pub name: &'static str,
    pub meaning: Meaning,
}

/// The knob of `m` among `knobs`, if the kind has one.
pub fn knob_of(knobs: &'static [Knob], m: Meaning) -> Option<&'static Knob> {
    knobs.iter().find(|k| k.meaning == m)
}

/// One side's socket buffer settings in bytes; None: not set, so the
/// kernel autotunes the socket within tcp_rmem / tcp_wmem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideTune {
    pub rcvbuf: Option<u64>,
    pub sndbuf: Option<u64>,
    /// Read from the configuration; false: not known (only the runtime
    /// API was read, and it does not say), so None means nothing.
    pub known: bool,
}

impl SideTune {
    /// `64.0K`, `auto` (not set), or `?` (not known).
    pub fn show(&self, v: Option<u64>) -> String {
        match (self.known, v) {
            (_, Some(b)) => crate::format::human_bytes(b),
            (true, None) => "auto".into(),
            (false, None) => "?".into(),
        }
    }
}

/// A proxy's buffer settings: a value (None: not set, or not known) for
/// each meaning, and the knobs of its kind that name them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tune {
    knobs: &'static [Knob],
    /// By [`Meaning::slot`].
    values: [Option<u64>; 5],
    /// Per side (client, server): the values were read from where they
    /// are set, so None means "not set" rather than "not known".
    known: [bool; 2],
}

fn side_slot(s: Side) -> usize {
    match s {
        Side::Client => 0,
        Side::Server => 1,
    }
}

impl Tune {
    /// Nothing set, nothing known, for a kind with these knobs.
    pub fn new(knobs: &'static [Knob]) -> Tune {
        Tune {
            knobs,
            ..Default::default()
        }
    }

    /// The kind's knobs, in its order.
    pub fn knobs(&self) -> &'static [Knob] {
        self.knobs
    }

    /// The kind's knob of meaning `m`.
    pub fn knob(&self, m: Meaning) -> Option<&'static Knob> {
        knob_of(self.knobs, m)
    }

    pub fn get(&self, m: Meaning) -> Option<u64> {
        self.values[m.slot()]
    }

    pub fn set(&mut self, m: Meaning, v: Option<u64>) {
        self.values[m.slot()] = v;
    }

    /// Sets the knob called `name` (a configuration's keyword); false when
    /// the kind has no knob of that name.
    pub fn set_named(&mut self, name: &str, v: Option<u64>) -> bool {
        match self.knobs.iter().find(|k| k.name == name) {
            Some(k) => {
                self.set(k.meaning, v);
                true
            }
            None => false,
        }
    }

    /// The proxy's own buffer.
    pub fn buffer(&self) -> Option<u64> {
        self.get(Meaning::ProxyBuffer)
    }

    /// Says the side's values were read from where they are set.
    pub fn set_known(&mut self, s: Side, known: bool) {
        self.known[side_slot(s)] = known;
    }

    pub fn side(&self, s: Side) -> SideTune {
        SideTune {
            rcvbuf: self.get(Meaning::Rcvbuf(s)),
            sndbuf: self.get(Meaning::Sndbuf(s)),
            known: self.known[side_slot(s)],
        }
    }
}
