//! `netmem top`'s live view. The engine runs as for `trace`; its sink
//! ([`TopSink`]) hands the model to a UI thread that owns the terminal,
//! keeps the [`view::View`] and draws it ([`draw`]) when something changed.
//! The terminal is restored on every exit: `q`, the engine stopping
//! (SIGTERM, SIGINT), a panic (ratatui's hook) and the forced exit after a
//! stuck stop (a hook in `engine::stop`).

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use anyhow::Result;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};

use crate::contract::Line;
use crate::doctor::{diagnose, State};
use crate::hooks::HookStatus;
use crate::model::names::Names;
use crate::model::{Event, Interval};
use crate::output::json::{event_line, interval_lines};
use crate::output::Sink;
use crate::sources::gather::DrillDown;
use crate::sources::netns::Netns;
use crate::sources::sockdiag::SockRecord;
use view::{Mode, SortKey, View};

pub mod draw;
pub mod layout;
pub mod view;

/// What the engine hands to the UI thread.
pub enum Msg {
    /// The run's names, first.
    Names(Names),
    Coverage(String),
    Event(Box<Event>),
    Interval(Box<Interval>),
}

/// The engine's sink: everything goes to the UI thread; a UI that has
/// quit is not an error (the engine is stopping too).
pub struct TopSink {
    pub tx: Sender<Msg>,
}

impl Sink for TopSink {
    fn names(&mut self, n: &Names) {
        let _ = self.tx.send(Msg::Names(n.clone()));
    }
    fn coverage(&mut self, hooks: &[HookStatus]) -> Result<()> {
        let c = crate::hooks::Coverage::of(hooks);
        let mut tiers: Vec<&str> = hooks
            .iter()
            .filter_map(|h| h.tier.map(|t| t.name()))
            .collect();
        tiers.sort();
        tiers.dedup();
        let _ = self.tx.send(Msg::Coverage(format!(
            "hooks {}/{} ({}; {} polled)",
            c.served,
            c.total,
            tiers.join(", "),
            c.polled
        )));
        Ok(())
    }
    fn event(&mut self, e: &Event) -> Result<()> {
        let _ = self.tx.send(Msg::Event(Box::new(e.clone())));
        Ok(())
    }
    fn interval(&mut self, i: &Interval) -> Result<()> {
        let _ = self.tx.send(Msg::Interval(Box::new(i.clone())));
        Ok(())
    }
}

/// The UI thread's loop: until `q` (which asks the engine to stop) or the
/// engine's end (the sender dropped).
pub fn run_ui(rx: Receiver<Msg>, netns: Netns, all_netns: bool, mut doctor: State) -> Result<()> {
    // Log records (a warning from a pass) written while the view owns the
    // terminal would land over it: they are held and said once it is
    // given back.
    held_log::hold();
    let mut term = ratatui::try_init()?;
    crate::shutdown::before_forced_exit(|| {
        ratatui::restore();
        held_log::release();
    });
    let res = ui_loop(&mut term, &rx, (&netns, all_netns), &mut doctor);
    ratatui::restore();
    held_log::release();
    res
}

/// Where log records go: standard error, or, while `top` owns the
/// terminal, a buffer (capped) written out when it gives it back.
pub mod held_log {
    use std::io::Write;
    use std::sync::Mutex;

    /// Some while held; what was held so far.
    static HELD: Mutex<Option<Vec<u8>>> = Mutex::new(None);
    /// More than this is dropped, and said.
    const MAX: usize = 64 * 1024;

    pub fn hold() {
        let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
        h.get_or_insert_with(Vec::new);
    }

    /// Writes what was held to standard error and stops holding.
    pub fn release() {
        let held = HELD.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(b) = held {
            let mut e = std::io::stderr();
            let _ = e.write_all(&b);
            if b.len() >= MAX {
                let _ = writeln!(
                    e,
                    "netmem: warning: more messages than these came while top ran"
                );
            }
        }
    }

    /// The log's target: see the module.
    pub struct Target;

    impl Write for Target {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
            match h.as_mut() {
                Some(held) => {
                    let room = MAX.saturating_sub(held.len());
                    held.extend_from_slice(&buf[..buf.len().min(room)]);
                    Ok(buf.len())
                }
                None => std::io::stderr().write(buf),
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            std::io::stderr().flush()
        }
    }
}

fn ui_loop(
    term: &mut ratatui::DefaultTerminal,
    rx: &Receiver<Msg>,
    (netns, all_netns): (&Netns, bool),
    doctor: &mut State,
) -> Result<()> {
    let mut v = View::default();
    let mut sockets: Vec<SockRecord> = Vec::new();
    // The drill-down dumps on its own thread; the view turns to the
    // sockets (or toggles TIME_WAIT) once the answer asked for last comes.
    let drill = DrillDown::start(netns.try_clone()?, all_netns)?;
    let mut asked: Option<(String, bool)> = None;
    let mut dirty = true;
    loop {
        loop {
            match rx.recv_timeout(Duration::from_millis(0)) {
                Ok(m) => {
                    apply(&mut v, doctor, m);
                    dirty = true;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        while let Some((g, time_wait, socks)) = drill.answer() {
            if asked.as_ref() != Some(&(g.clone(), time_wait)) {
                continue;
            }
            asked = None;
            if matches!(v.mode, Mode::Table | Mode::Sockets(_)) {
                v.time_wait = time_wait;
                v.scroll = 0;
                sockets = socks;
                v.mode = Mode::Sockets(g);
                dirty = true;
            }
        }
        if dirty {
            term.draw(|f| draw::draw(f, &v, &sockets))?;
            dirty = false;
        }
        if !event::poll(Duration::from_millis(100))? {
            continue;
        }
        dirty = true;
        let TermEvent::Key(k) = event::read()? else {
            continue; // a resize: redraw
        };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let ctrl_c = k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c');
        if ctrl_c {
            crate::shutdown::request();
            return Ok(());
        }
        match (&v.mode, k.code) {
            (Mode::Help, _) => v.mode = Mode::Table,
            (Mode::Filter, KeyCode::Enter) => {
                v.filter = std::mem::take(&mut v.typing);
                v.selected = 0;
                v.mode = Mode::Table;
            }
            (Mode::Filter, KeyCode::Esc) => {
                v.typing.clear();
                v.filter.clear();
                v.mode = Mode::Table;
            }
            (Mode::Filter, KeyCode::Backspace) => {
                v.typing.pop();
            }
            // Not Ctrl-J and friends: a newline typed before the terminal
            // went raw arrives as Ctrl-J.
            (Mode::Filter, KeyCode::Char(c))
                if k.modifiers.difference(KeyModifiers::SHIFT).is_empty() =>
            {
                v.typing.push(c)
            }
            (Mode::Filter, _) => {}
            (_, KeyCode::Char('q')) => {
                crate::shutdown::request();
                return Ok(());
            }
            (Mode::Sockets(_), KeyCode::Esc) => {
                asked = None;
                v.mode = Mode::Table;
            }
            (Mode::Sockets(g), KeyCode::Char('t')) => {
                drill.ask(g, !v.time_wait, &v.names);
                asked = Some((g.clone(), !v.time_wait));
            }
            (Mode::Sockets(_), KeyCode::Down | KeyCode::Char('j')) => {
                v.scroll = (v.scroll + 1).min(sockets.len().saturating_sub(1));
            }
            (Mode::Sockets(_), KeyCode::Up | KeyCode::Char('k')) => {
                v.scroll = v.scroll.saturating_sub(1);
            }
            (_, KeyCode::Char('?')) => v.mode = Mode::Help,
            (_, KeyCode::Char('p')) => v.toggle_pause(),
            (_, KeyCode::Char('/')) => {
                v.typing = v.filter.clone();
                v.mode = Mode::Filter;
            }
            (Mode::Table, KeyCode::Down | KeyCode::Char('j')) => v.move_selection(true),
            (Mode::Table, KeyCode::Up | KeyCode::Char('k')) => v.move_selection(false),
            (Mode::Table, KeyCode::Enter) => {
                if let Some(g) = v.selected_group() {
                    drill.ask(&g, v.time_wait, &v.names);
                    asked = Some((g, v.time_wait));
                }
            }
            (Mode::Table, KeyCode::Char(c)) => {
                if let Some(s) = SortKey::ALL.into_iter().find(|s| s.key() == c) {
                    v.sort = s;
                    v.selected = 0;
                }
            }
            _ => {}
        }
    }
}

fn apply(v: &mut View, doctor: &mut State, m: Msg) {
    match m {
        Msg::Names(n) => v.names = n,
        Msg::Coverage(c) => v.coverage = c,
        Msg::Event(e) => {
            doctor.window.feed(&Line::Event(event_line(&e, &v.names)));
            v.on_event(&e);
        }
        Msg::Interval(i) => {
            for line in interval_lines(&i, &v.names) {
                doctor.window.feed(&line);
            }
            v.on_interval(&i);
            v.finding = diagnose(doctor)
                .first()
                .map(|f| format!("doctor: [{}] {}", f.severity.name(), f.title));
        }
    }
}
