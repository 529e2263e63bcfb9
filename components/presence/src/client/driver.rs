//! Carries the [`Machine`]'s commands out in the browser: the heartbeat loop, timers, the
//! WebSocket, page events. Single-threaded: shared state lives in `Rc`/`RefCell`, wrapped in
//! `SendWrapper` where Leptos asks for `Send`. No decisions here: each event goes to the machine.

use super::http;
use super::machine::{Command, HeartbeatArgs, Ids, Machine, Next};
use super::socket_route::{Route, SocketEvent, Step};
use crate::store::PresenceStore;
use crate::use_presence::{ConnectionStatus, PresenceControl, UsePresenceOptions};
use crate::{ApiError, RoomMessage};
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use presence_core::wire::HeartbeatResponse;
use presence_core::PresenceError;
use send_wrapper::SendWrapper;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

const USER_KEY: &str = "leptos-presence:user";
/// Where a going page leaves its session for the next page of the tab (`sessionStorage`).
const RESUME_KEY: &str = "leptos-presence:resume";
/// A kept session is taken on only this soon after (ms): later, the server has ended it anyway,
/// and a tab opened meanwhile with `window.open` (which copies `sessionStorage`) must not share it.
const RESUME_WITHIN_MS: f64 = 5_000.0;
/// A socket that joins and has not answered its heartbeat within this long (ms) is given up, and
/// the heartbeat goes over HTTP.
const JOIN_ANSWER_WAIT_MS: u32 = 10_000;

/// A page event's handler, kept alive while it is registered.
type EventCallback = Closure<dyn FnMut(web_sys::Event)>;

pub(crate) struct Setup {
    pub room: Signal<String>,
    pub name: Signal<String>,
    pub options: UsePresenceOptions,
    pub store: PresenceStore,
    pub status: ArcRwSignal<ConnectionStatus>,
    pub user_id: ArcRwSignal<Option<String>>,
    pub session_id: ArcRwSignal<Option<String>>,
    pub error: ArcRwSignal<Option<PresenceError>>,
    pub invisible: ArcRwSignal<bool>,
}

/// Starts the hook in the browser: everything begins in an effect, i.e. after hydration.
pub(crate) fn start(setup: Setup) -> Arc<dyn PresenceControl> {
    let slot: Rc<RefCell<Option<Rc<Driver>>>> = Rc::default();
    let pending_state: Rc<RefCell<Option<Value>>> =
        Rc::new(RefCell::new(setup.options.initial_state.clone()));
    let control = Arc::new(Control {
        slot: SendWrapper::new(slot.clone()),
        pending_state: SendWrapper::new(pending_state.clone()),
        invisible: setup.invisible.clone(),
    });
    let Setup {
        room,
        name,
        options,
        store,
        status,
        user_id,
        session_id,
        error,
        invisible,
    } = setup;
    let effect_slot = slot.clone();
    Effect::new(move |_| {
        let room = room.get();
        let name = name.get();
        let app_user = options.user_id.map(|u| u.get());
        let existing = effect_slot.borrow().clone();
        match existing {
            Some(driver) => {
                if let Some(user) = app_user {
                    driver.event(|m| m.set_user(user));
                }
                driver.event(|m| m.set_name(name));
                driver.event(|m| m.set_room(room));
            }
            None => {
                let user = app_user.unwrap_or_else(stored_user_id);
                // (set_invisible may have been called before this first run.)
                let options = options.clone().invisible(invisible.get_untracked());
                let machine = Machine::new(
                    options.clone(),
                    Box::new(BrowserIds),
                    room,
                    user.clone(),
                    name,
                    pending_state.borrow_mut().take(),
                    is_hidden(),
                );
                let mut machine = machine;
                if let Some(resume) = take_resume() {
                    machine.resume(resume);
                }
                user_id.set(Some(user));
                session_id.set(Some(machine.session().to_string()));
                let driver = Driver::start(
                    machine,
                    (
                        options.server_url.clone().unwrap_or_default(),
                        (options.list, options.summary_size),
                    ),
                    store.clone(),
                    Signals {
                        status: status.clone(),
                        error: error.clone(),
                        user: user_id.clone(),
                        session: session_id.clone(),
                        invisible: invisible.clone(),
                    },
                );
                *effect_slot.borrow_mut() = Some(driver);
            }
        }
    });
    let cleanup_slot = SendWrapper::new(slot);
    on_cleanup(move || {
        if let Some(driver) = cleanup_slot.borrow_mut().take() {
            driver.shut_down();
        }
    });
    control
}

struct Control {
    slot: SendWrapper<Rc<RefCell<Option<Rc<Driver>>>>>,
    pending_state: SendWrapper<Rc<RefCell<Option<Value>>>>,
    invisible: ArcRwSignal<bool>,
}

impl PresenceControl for Control {
    fn set_state(&self, state: Value) {
        let driver = self.slot.borrow().clone();
        match driver {
            Some(driver) => driver.event(|m| m.set_state(state)),
            None => *self.pending_state.borrow_mut() = Some(state),
        }
    }

    fn leave(&self) {
        let driver = self.slot.borrow().clone();
        if let Some(driver) = driver {
            driver.event(Machine::leave);
        }
    }

    fn page_source(&self) -> Option<(String, String)> {
        let driver = self.slot.borrow().clone()?;
        let token = driver.machine.borrow().room_token()?.to_string();
        Some((driver.base.clone(), token))
    }

    fn set_invisible(&self, invisible: bool) {
        let driver = self.slot.borrow().clone();
        match driver {
            Some(driver) => driver.event(|m| m.set_invisible(invisible)),
            // Not started yet: the machine starts with it.
            None => self.invisible.set(invisible),
        }
    }
}

/// Ids from the browser's cryptographic random source.
struct BrowserIds;

impl Ids for BrowserIds {
    fn session_id(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// 64 hex digits (two v4 UUIDs: 244 random bits).
    fn token(&mut self) -> String {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    }
}

/// The answer a socket that joins gives its heartbeat (see [`Step::Answered`]).
type Answer = Option<Result<HeartbeatResponse, PresenceError>>;

/// A subscription socket, its events going where its [`Route`] says.
struct Socket {
    ws: WebSocket,
    route: Rc<RefCell<Route>>,
    _on_open: Option<Closure<dyn FnMut(web_sys::Event)>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Opens a socket to `url` whose events go by `route` (to `driver`, and a heartbeat's
    /// answer to `answered`); `first` is sent once it is open. `None` if the URL is refused.
    fn open(
        url: &str,
        route: Route,
        first: Option<String>,
        driver: Weak<Driver>,
        answered: Option<oneshot::Sender<Answer>>,
    ) -> Option<Socket> {
        let ws = WebSocket::new(url).ok()?;
        let route = Rc::new(RefCell::new(route));
        let answered = RefCell::new(answered);
        let on_event = Rc::new({
            let route = route.clone();
            move |event: SocketEvent| {
                let step = route.borrow_mut().on(event);
                match step {
                    Step::Answered(answer) => {
                        if let Some(answered) = answered.borrow_mut().take() {
                            let _ = answered.send(answer);
                        }
                    }
                    Step::Deliver(generation, event) => {
                        if let Some(driver) = driver.upgrade() {
                            driver.deliver(generation, event);
                        }
                    }
                    Step::Nothing => {}
                }
            }
        });
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
            let on_event = on_event.clone();
            move |event: MessageEvent| {
                if let Some(text) = event.data().as_string() {
                    on_event(SocketEvent::Message(text));
                }
            }
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            on_event(SocketEvent::Closed);
        });
        let on_open = first.map(|text| {
            let ws = ws.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
                let _ = ws.send_with_str(&text);
            })
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        if let Some(on_open) = &on_open {
            ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        }
        Some(Socket {
            ws,
            route,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    fn close(self) {
        *self.route.borrow_mut() = Route::Dropped;
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

/// A socket that joined, with the tokens of its answer, until the machine opens its socket.
struct Joined {
    socket: Socket,
    room_token: String,
    session_token: String,
}

/// The signals the driver writes for the app.
struct Signals {
    status: ArcRwSignal<ConnectionStatus>,
    error: ArcRwSignal<Option<PresenceError>>,
    user: ArcRwSignal<Option<String>>,
    session: ArcRwSignal<Option<String>>,
    invisible: ArcRwSignal<bool>,
}

struct Driver {
    machine: RefCell<Machine>,
    /// The server URL (no trailing slash), or empty for this page's origin.
    base: String,
    /// Which list to subscribe to, and a summary's size.
    list: (crate::ListMode, usize),
    store: PresenceStore,
    signals: Signals,
    socket: RefCell<Option<Socket>>,
    /// A socket whose heartbeat was answered, for the machine's next `OpenSocket`.
    joined: RefCell<Option<Joined>>,
    /// A socket that joins failed before answering: heartbeats go over HTTP until a socket
    /// delivers again (so a proxy that holds sockets without answering costs one wait, not one
    /// per heartbeat).
    sockets_failing: std::cell::Cell<bool>,
    listeners: RefCell<Vec<WindowListenerHandle>>,
    /// `visibilitychange`, on the document where it is fired.
    visibility: RefCell<Option<EventCallback>>,
    /// When input was last passed to the machine (at most once a second).
    last_input: std::cell::Cell<f64>,
    kick: mpsc::UnboundedSender<()>,
    this: Weak<Driver>,
}

impl Driver {
    fn start(
        machine: Machine,
        (base, list): (String, (crate::ListMode, usize)),
        store: PresenceStore,
        signals: Signals,
    ) -> Rc<Driver> {
        let (kick, kicks) = mpsc::unbounded();
        let driver = Rc::new_cyclic(|this| Driver {
            machine: RefCell::new(machine),
            base: base.trim_end_matches('/').to_string(),
            list,
            store,
            signals,
            socket: RefCell::new(None),
            joined: RefCell::new(None),
            sockets_failing: std::cell::Cell::new(false),
            listeners: RefCell::new(Vec::new()),
            visibility: RefCell::new(None),
            last_input: std::cell::Cell::new(0.0),
            kick,
            this: this.clone(),
        });
        driver.listen();
        // Loading the page counts as input: idle is measured from here.
        driver.input();
        spawn_local(heartbeat_loop(driver.clone(), kicks));
        driver
    }

    /// Input (pointer, keys, wheel, touch), passed to the machine at most once a second: idle
    /// needs no finer grain, and pointer moves come 60 times a second.
    fn input(&self) {
        let now = js_sys::Date::now();
        if now - self.last_input.get() >= 1_000.0 {
            self.last_input.set(now);
            self.event(|m| m.input(now));
        }
    }

    /// Feeds one event to the machine and carries out what it decides.
    fn event(&self, event: impl FnOnce(&mut Machine) -> Vec<Command>) {
        let commands = event(&mut self.machine.borrow_mut());
        self.run(commands);
    }

    fn run(&self, commands: Vec<Command>) {
        for command in commands {
            match command {
                Command::OpenSocket {
                    generation,
                    room_token,
                    session_token,
                } => self.open_socket(generation, &room_token, &session_token),
                Command::CloseSocket => {
                    if let Some(socket) = self.socket.borrow_mut().take() {
                        socket.close();
                    }
                }
                Command::Disconnect(token) => {
                    let base = self.base.clone();
                    spawn_local(async move {
                        let _ = http::disconnect(&base, &token).await;
                    });
                }
                Command::Going(token) => http::going(&self.base, &token),
                Command::FlushStateAfter(delay) => self.after(delay, |driver| driver.flush_state()),
                Command::RetrySocketAfter {
                    generation,
                    delay_ms,
                } => self.after(delay_ms, move |driver| {
                    driver.event(|m| m.socket_retry_due(generation))
                }),
                Command::SetUser(user) => self.signals.user.set(Some(user)),
                Command::SetSession(session) => self.signals.session.set(Some(session)),
                Command::SetInvisible(invisible) => self.signals.invisible.set(invisible),
                Command::SetError(error) => {
                    if self.signals.error.with_untracked(|e| *e != error) {
                        self.signals.error.set(error);
                    }
                }
                Command::ClearList => self.store.clear(),
                Command::Remember(resume) => remember(&resume),
                Command::ForgetResume => {
                    if let Some(storage) = session_storage() {
                        let _ = storage.remove_item(RESUME_KEY);
                    }
                }
                Command::Wake => {
                    let _ = self.kick.unbounded_send(());
                }
            }
        }
        let status = self.machine.borrow().status();
        if self.signals.status.get_untracked() != status {
            self.signals.status.set(status);
        }
    }

    /// Runs `then` after `delay` ms, if this driver still exists.
    fn after(&self, delay: u64, then: impl FnOnce(&Driver) + 'static) {
        let this = self.this.clone();
        spawn_local(async move {
            TimeoutFuture::new(delay.min(u32::MAX as u64) as u32).await;
            if let Some(driver) = this.upgrade() {
                then(&driver);
            }
        });
    }

    fn flush_state(&self) {
        let Some((token, state)) = self.machine.borrow_mut().flush_due() else {
            return;
        };
        let (this, base) = (self.this.clone(), self.base.clone());
        spawn_local(async move {
            if let Err(e) = http::update_state(&base, &token, state).await {
                warn(&format!("presence update failed: {e}"));
                if let Some(driver) = this.upgrade() {
                    driver.event(|m| m.update_failed(&e.0));
                }
            }
        });
    }

    fn open_socket(&self, generation: u64, room_token: &str, session_token: &str) {
        if let Some(old) = self.socket.borrow_mut().take() {
            old.close();
        }
        let joined = self.joined.borrow_mut().take();
        if let Some(joined) = joined {
            if joined.room_token == room_token && joined.session_token == session_token {
                // The socket that joined is this one: what it held goes first.
                let held = joined.socket.route.borrow_mut().go_live(generation);
                *self.socket.borrow_mut() = Some(joined.socket);
                for event in held {
                    self.deliver(generation, event);
                }
                return;
            }
            joined.socket.close();
        }
        let url = http::socket_url(&self.base, room_token, session_token, &self.list_query());
        match Socket::open(&url, Route::Live(generation), None, self.this.clone(), None) {
            Some(socket) => *self.socket.borrow_mut() = Some(socket),
            None => self.event(|m| m.socket_closed(generation, js_sys::Math::random())),
        }
    }

    /// Which list a subscription asks for.
    fn list_query(&self) -> http::ListQuery {
        http::ListQuery {
            mode: self.list.0,
            size: self.list.1,
            me: self.signals.user.get_untracked(),
        }
    }

    /// One event of the machine's socket of `generation`.
    fn deliver(&self, generation: u64, event: SocketEvent) {
        match event {
            SocketEvent::Message(text) => {
                self.sockets_failing.set(false);
                self.deliver_message(generation, text)
            }
            SocketEvent::Closed => {
                self.event(|m| m.socket_closed(generation, js_sys::Math::random()))
            }
        }
    }

    fn deliver_message(&self, generation: u64, text: String) {
        match serde_json::from_str::<RoomMessage>(&text) {
            Ok(message) => {
                self.event(|m| m.message(generation, message, |message| self.store.apply(message)))
            }
            Err(e) => warn(&format!("presence: unreadable message: {e}")),
        }
    }

    /// Sends heartbeat `args`: on a new socket that joins with it when the machine says so
    /// ([`Machine::joins_on_socket`]), else (or if that socket fails before answering) over HTTP.
    async fn heartbeat(&self, args: &HeartbeatArgs) -> Result<HeartbeatResponse, ApiError> {
        if self.machine.borrow().joins_on_socket() && !self.sockets_failing.get() {
            if let Some(answer) = self.join_on_socket(args).await {
                return answer.map_err(ApiError);
            }
            self.sockets_failing.set(true);
        }
        http::heartbeat(&self.base, args).await
    }

    async fn join_on_socket(&self, args: &HeartbeatArgs) -> Answer {
        // No `me`: the server follows the user it answers for, which an auth hook may have
        // stamped (this tab's own id is not who it is then).
        let list = http::ListQuery {
            me: None,
            ..self.list_query()
        };
        let url = http::socket_join_url(&self.base, &list);
        let (answered, answer) = oneshot::channel();
        let first = Some(http::heartbeat_body(args));
        let socket = Socket::open(
            &url,
            Route::Answering,
            first,
            self.this.clone(),
            Some(answered),
        )?;
        let mut wait = TimeoutFuture::new(JOIN_ANSWER_WAIT_MS).fuse();
        let answer = futures::select! {
            answer = answer.fuse() => answer.ok().flatten(),
            _ = wait => None,
        };
        match answer {
            Some(Ok(response)) => {
                *self.joined.borrow_mut() = Some(Joined {
                    socket,
                    room_token: response.room_token.clone(),
                    session_token: response.session_token.clone(),
                });
                Some(Ok(response))
            }
            refused_or_failed => {
                socket.close();
                refused_or_failed
            }
        }
    }

    /// Closes a socket that joined if the machine did not take it (it moved on meanwhile).
    fn drop_joined(&self) {
        if let Some(joined) = self.joined.borrow_mut().take() {
            joined.socket.close();
        }
    }

    fn shut_down(&self) {
        self.event(Machine::shut_down);
        self.drop_joined();
        for handle in self.listeners.borrow_mut().drain(..) {
            handle.remove();
        }
        if let (Some(callback), Some(document)) = (
            self.visibility.borrow_mut().take(),
            web_sys::window().and_then(|w| w.document()),
        ) {
            let _ = document.remove_event_listener_with_callback(
                "visibilitychange",
                callback.as_ref().unchecked_ref(),
            );
        }
        self.kick.close_channel();
    }

    /// Page events: the window's through Leptos' window listeners, `visibilitychange` on the
    /// document (where it is fired; it reaches the window only when it bubbles).
    fn listen(&self) {
        let on = |this: Weak<Driver>, event: fn(&mut Machine, web_sys::Event) -> Vec<Command>| {
            move |e: web_sys::Event| {
                if let Some(driver) = this.upgrade() {
                    driver.event(|m| event(m, e));
                }
            }
        };
        let mut handles = vec![
            window_event_listener_untyped(
                "pagehide",
                on(self.this.clone(), |m, _| {
                    m.unloading(js_sys::Date::now(), true)
                }),
            ),
            window_event_listener_untyped(
                "beforeunload",
                on(self.this.clone(), |m, _| {
                    m.unloading(js_sys::Date::now(), false)
                }),
            ),
            window_event_listener_untyped(
                "pageshow",
                on(self.this.clone(), |m, e| {
                    let restored = e
                        .dyn_ref::<web_sys::PageTransitionEvent>()
                        .is_some_and(|e| e.persisted());
                    if restored {
                        m.shown_again()
                    } else {
                        Vec::new()
                    }
                }),
            ),
            window_event_listener_untyped("online", on(self.this.clone(), |m, _| m.network(true))),
            window_event_listener_untyped(
                "offline",
                on(self.this.clone(), |m, _| m.network(false)),
            ),
        ];
        for name in [
            "pointermove",
            "pointerdown",
            "keydown",
            "wheel",
            "touchstart",
        ] {
            let this = self.this.clone();
            handles.push(window_event_listener_untyped(name, move |_| {
                if let Some(driver) = this.upgrade() {
                    driver.input();
                }
            }));
        }
        *self.listeners.borrow_mut() = handles;
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            let callback =
                Closure::<dyn FnMut(web_sys::Event)>::new(on(self.this.clone(), |m, _| {
                    let hidden = is_hidden();
                    let mut commands = m.visibility(hidden);
                    if !hidden {
                        // Coming back to the tab is input.
                        commands.extend(m.input(js_sys::Date::now()));
                    }
                    commands
                }));
            let _ = document.add_event_listener_with_callback(
                "visibilitychange",
                callback.as_ref().unchecked_ref(),
            );
            *self.visibility.borrow_mut() = Some(callback);
        }
    }
}

async fn heartbeat_loop(driver: Rc<Driver>, mut kicks: mpsc::UnboundedReceiver<()>) {
    loop {
        let next = driver.machine.borrow().next_heartbeat(js_sys::Date::now());
        let wait = match next {
            Next::Send(args) => {
                let result = driver.heartbeat(&args).await;
                if let Err(e) = &result {
                    warn(&format!("presence heartbeat failed: {e}"));
                }
                let (wait, commands) = driver.machine.borrow_mut().heartbeat_answered(
                    &args,
                    result.map_err(|e| e.0),
                    js_sys::Math::random(),
                );
                driver.run(commands);
                driver.drop_joined();
                Some(wait)
            }
            Next::Wait(ms) => Some(ms),
            Next::Idle => None,
        };
        let kicked = match wait {
            Some(0) => {
                // At once, and the wake-ups that asked for this heartbeat are answered by it.
                while kicks.try_recv().is_ok() {}
                continue;
            }
            Some(ms) => {
                let mut sleep = TimeoutFuture::new(ms.min(u32::MAX as u64) as u32).fuse();
                futures::select! {
                    _ = sleep => true,
                    k = kicks.next() => k.is_some(),
                }
            }
            None => kicks.next().await.is_some(),
        };
        if !kicked {
            return; // the channel closed: shut down
        }
        // Several kicks while waiting make one heartbeat.
        while kicks.try_recv().is_ok() {}
    }
}

fn is_hidden() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden)
}

/// This browser's user id: random once, then kept in localStorage so tabs share it.
fn stored_user_id() -> String {
    let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    if let Some(id) = storage
        .as_ref()
        .and_then(|s| s.get_item(USER_KEY).ok().flatten())
    {
        if presence_core::validate::id(presence_core::error::Field::User, &id).is_ok() {
            return id;
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    if let Some(s) = storage {
        let _ = s.set_item(USER_KEY, &id);
    }
    id
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.session_storage().ok().flatten())
}

/// Keeps a going page's session for the tab's next page (see [`take_resume`]).
fn remember(resume: &crate::client::machine::Resume) {
    let kept = serde_json::json!({ "at": js_sys::Date::now(), "resume": resume });
    if let Some(storage) = session_storage() {
        let _ = storage.set_item(RESUME_KEY, &kept.to_string());
    }
}

/// The session the tab's previous page (or mount) kept, if it went moments ago. Read once: it
/// is removed whatever it holds.
fn take_resume() -> Option<crate::client::machine::Resume> {
    let storage = session_storage()?;
    let kept = storage.get_item(RESUME_KEY).ok().flatten()?;
    let _ = storage.remove_item(RESUME_KEY);
    let kept: serde_json::Value = serde_json::from_str(&kept).ok()?;
    let age = js_sys::Date::now() - kept.get("at")?.as_f64()?;
    if !(0.0..=RESUME_WITHIN_MS).contains(&age) {
        return None;
    }
    serde_json::from_value(kept.get("resume")?.clone()).ok()
}

fn warn(message: &str) {
    web_sys::console::warn_1(&message.into());
}
