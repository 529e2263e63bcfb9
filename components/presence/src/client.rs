//! The browser side of `use_presence` (feature `hydrate`). Single-threaded: shared state lives
//! in `Rc<RefCell<…>>`, wrapped in `SendWrapper` where Leptos asks for `Send`.

use crate::store::PresenceStore;
use crate::use_presence::{ConnectionStatus, PresenceControl, UsePresenceOptions};
use crate::{ApiError, RoomMessage, SUBSCRIBE_PATH};
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use presence_core::room_view::Applied;
use presence_core::wire::LeaveReason;
use presence_core::PresenceError;
use send_wrapper::SendWrapper;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, Event, EventTarget, MessageEvent, PageTransitionEvent, WebSocket};

const USER_KEY: &str = "leptos-presence:user";

/// What a page or document event does to the client.
type Handler = Box<dyn Fn(&Client, Event)>;

pub(crate) struct Setup {
    pub room: Signal<String>,
    pub name: Signal<String>,
    pub options: UsePresenceOptions,
    pub store: PresenceStore,
    pub status: ArcRwSignal<ConnectionStatus>,
    pub user_id: ArcRwSignal<Option<String>>,
    pub session_id: ArcRwSignal<Option<String>>,
    pub error: ArcRwSignal<Option<PresenceError>>,
}

/// Starts the hook in the browser: everything begins in an effect, i.e. after hydration.
pub(crate) fn start(setup: Setup) -> Arc<dyn PresenceControl> {
    let slot: Rc<RefCell<Option<Rc<Client>>>> = Rc::default();
    let pending_state: Rc<RefCell<Option<Value>>> =
        Rc::new(RefCell::new(setup.options.initial_state.clone()));
    let control = Arc::new(Control {
        slot: SendWrapper::new(slot.clone()),
        pending_state: SendWrapper::new(pending_state.clone()),
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
    } = setup;
    let effect_slot = slot.clone();
    Effect::new(move |_| {
        let room = room.get();
        let name = name.get();
        let existing = effect_slot.borrow().clone();
        match existing {
            Some(client) => {
                client.set_name(name);
                client.set_room(room);
            }
            None => {
                let user = options
                    .user_id
                    .map(|u| u.get_untracked())
                    .unwrap_or_else(stored_user_id);
                let session = uuid::Uuid::new_v4().to_string();
                user_id.set(Some(user.clone()));
                session_id.set(Some(session.clone()));
                let client = Client::start(
                    options.clone(),
                    store.clone(),
                    status.clone(),
                    error.clone(),
                    user_id.clone(),
                    user,
                    session,
                    room,
                    name,
                    pending_state.borrow_mut().take(),
                );
                *effect_slot.borrow_mut() = Some(client);
            }
        }
    });
    let cleanup_slot = SendWrapper::new(slot);
    on_cleanup(move || {
        if let Some(client) = cleanup_slot.borrow_mut().take() {
            client.shut_down();
        }
    });
    control
}

struct Control {
    slot: SendWrapper<Rc<RefCell<Option<Rc<Client>>>>>,
    pending_state: SendWrapper<Rc<RefCell<Option<Value>>>>,
}

impl PresenceControl for Control {
    fn set_state(&self, state: Value) {
        let client = self.slot.borrow().clone();
        match client {
            Some(client) => client.set_state(state),
            None => *self.pending_state.borrow_mut() = Some(state),
        }
    }

    fn leave(&self) {
        let client = self.slot.borrow().clone();
        if let Some(client) = client {
            client.leave();
        }
    }
}

struct Tokens {
    session: String,
    room: String,
}

struct Socket {
    ws: WebSocket,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    fn close(self) {
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

struct Listener {
    target: EventTarget,
    event: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

#[derive(Default)]
struct State {
    room: String,
    name: String,
    session: String,
    /// The last good tokens: a failed heartbeat never clears them.
    tokens: Option<Tokens>,
    /// The session token this tab proposes when it joins (made up here, 244 random bits): if a
    /// join times out after the server applied it, the retry carries the same token and finds
    /// its session instead of leaving a ghost only the server knows the token of.
    proposed_token: String,
    state: Option<Value>,
    throttle_armed: bool,
    away: bool,
    /// Set on pagehide/beforeunload: no heartbeats until this time (ms) or a pageshow.
    paused_until: f64,
    /// `leave()` was called: idle until the room changes.
    left: bool,
    /// The component is gone: everything stops for good.
    shut_down: bool,
    room_generation: u64,
    socket: Option<Socket>,
    socket_generation: u64,
    socket_failures: u32,
    socket_synced: bool,
    heartbeat_failures: u32,
    heartbeat_ok: bool,
    ever_connected: bool,
    listeners: Vec<Listener>,
}

struct Client {
    options: UsePresenceOptions,
    store: PresenceStore,
    status: ArcRwSignal<ConnectionStatus>,
    error: ArcRwSignal<Option<PresenceError>>,
    /// Who this is: the local id at first, then whatever the server stamped (auth hook).
    user: RefCell<String>,
    user_signal: ArcRwSignal<Option<String>>,
    st: RefCell<State>,
    kick: mpsc::UnboundedSender<()>,
    this: RefCell<Weak<Client>>,
}

struct HeartbeatArgs {
    generation: u64,
    room: String,
    session: String,
    name: String,
    interval_ms: u64,
    state: Option<Value>,
    away: bool,
    token: Option<String>,
}

impl Client {
    #[allow(clippy::too_many_arguments)]
    fn start(
        options: UsePresenceOptions,
        store: PresenceStore,
        status: ArcRwSignal<ConnectionStatus>,
        error: ArcRwSignal<Option<PresenceError>>,
        user_signal: ArcRwSignal<Option<String>>,
        user: String,
        session: String,
        room: String,
        name: String,
        initial_state: Option<Value>,
    ) -> Rc<Client> {
        let (kick, kicks) = mpsc::unbounded();
        let client = Rc::new(Client {
            options,
            store,
            status,
            error,
            user: RefCell::new(user),
            user_signal,
            st: RefCell::new(State {
                room,
                name,
                session,
                proposed_token: random_token(),
                state: initial_state.filter(|v| !v.is_null()),
                away: is_hidden(),
                ..State::default()
            }),
            kick,
            this: RefCell::new(Weak::new()),
        });
        *client.this.borrow_mut() = Rc::downgrade(&client);
        client.listen();
        spawn_local(heartbeat_loop(client.clone(), kicks));
        client
    }

    fn me(&self) -> Option<Rc<Client>> {
        self.this.borrow().upgrade()
    }

    fn wake(&self) {
        let _ = self.kick.unbounded_send(());
    }

    fn refresh_status(&self) {
        let st = self.st.borrow();
        let online = web_sys::window()
            .map(|w| w.navigator().on_line())
            .unwrap_or(true);
        let status = if st.left || st.shut_down || !online {
            ConnectionStatus::Offline
        } else if st.heartbeat_ok && st.socket_synced {
            ConnectionStatus::Connected
        } else if st.ever_connected {
            ConnectionStatus::Reconnecting
        } else {
            ConnectionStatus::Connecting
        };
        drop(st);
        if self.status.get_untracked() != status {
            if status == ConnectionStatus::Connected {
                self.st.borrow_mut().ever_connected = true;
            }
            self.status.set(status);
        }
    }

    fn backoff_ms(&self, failures: u32) -> u64 {
        let exp = self
            .options
            .min_backoff_ms
            .saturating_mul(1u64 << failures.saturating_sub(1).min(16))
            .min(self.options.max_backoff_ms);
        // Full jitter on the upper half: spreads reconnects of many tabs after a restart.
        let jitter = 0.5 + js_sys::Math::random() * 0.5;
        ((exp as f64) * jitter) as u64
    }

    /// What the next heartbeat sends, or how long to wait (ms) if none should be sent now.
    fn next_heartbeat(&self) -> Result<HeartbeatArgs, Option<u64>> {
        let st = self.st.borrow();
        if st.shut_down || st.left {
            return Err(None);
        }
        let now = js_sys::Date::now();
        if st.paused_until > now {
            return Err(Some((st.paused_until - now) as u64 + 1));
        }
        Ok(HeartbeatArgs {
            generation: st.room_generation,
            room: st.room.clone(),
            session: st.session.clone(),
            name: st.name.clone(),
            interval_ms: if st.away {
                self.options.hidden_interval_ms
            } else {
                self.options.interval_ms
            },
            // A join carries the state; later changes go through `update`.
            state: if st.tokens.is_none() {
                st.state.clone()
            } else {
                None
            },
            away: st.away,
            token: Some(
                st.tokens
                    .as_ref()
                    .map_or_else(|| st.proposed_token.clone(), |t| t.session.clone()),
            ),
        })
    }

    /// Handles a heartbeat's answer; returns how long to wait before the next one.
    fn after_heartbeat(
        &self,
        args: &HeartbeatArgs,
        result: Result<crate::HeartbeatResponse, ApiError>,
    ) -> u64 {
        let mut st = self.st.borrow_mut();
        if st.shut_down || st.left || st.room_generation != args.generation {
            // Left or moved on while this was in flight: do not leave a session behind.
            if let Ok(response) = result {
                spawn_local(disconnect_quietly(response.session_token));
            }
            return 0;
        }
        match result {
            Ok(response) => {
                let response_user = response.user_id.clone();
                let rejoined = response.joined && st.tokens.is_some();
                let room_token_changed = st
                    .tokens
                    .as_ref()
                    .is_none_or(|t| t.room != response.room_token);
                st.tokens = Some(Tokens {
                    session: response.session_token,
                    room: response.room_token,
                });
                st.heartbeat_failures = 0;
                st.heartbeat_ok = true;
                let needs_socket = response.joined || room_token_changed || st.socket.is_none();
                let resend_state = rejoined && st.state.is_some();
                let wait = if st.away {
                    self.options.hidden_interval_ms
                } else {
                    self.options.interval_ms
                };
                drop(st);
                if !response_user.is_empty() && *self.user.borrow() != response_user {
                    // The server stamped another identity (an auth hook): that is who we are.
                    *self.user.borrow_mut() = response_user.clone();
                    self.user_signal.set(Some(response_user));
                }
                if self.error.with_untracked(Option::is_some) {
                    self.error.set(None);
                }
                if needs_socket {
                    self.connect_socket();
                }
                if resend_state {
                    self.arm_state_flush(0);
                }
                self.refresh_status();
                wait
            }
            Err(ApiError(PresenceError::TooManyRequests { retry_after_ms })) => {
                // The server says when: no guessing, no hammering.
                drop(st);
                self.refresh_status();
                retry_after_ms.max(self.options.min_backoff_ms)
            }
            Err(ApiError(PresenceError::SessionTokenMismatch { .. })) => {
                // Someone else holds this session id here: start a fresh session.
                st.session = uuid::Uuid::new_v4().to_string();
                st.proposed_token = random_token();
                st.tokens = None;
                0
            }
            Err(error) => {
                warn(&format!("presence heartbeat failed: {error}"));
                st.heartbeat_failures += 1;
                st.heartbeat_ok = false;
                let failures = st.heartbeat_failures;
                drop(st);
                self.error.set(Some(error.0));
                self.refresh_status();
                self.backoff_ms(failures)
            }
        }
    }

    fn connect_socket(&self) {
        let Some(me) = self.me() else { return };
        let mut st = self.st.borrow_mut();
        if let Some(old) = st.socket.take() {
            old.close();
        }
        st.socket_synced = false;
        if st.shut_down || st.left {
            return;
        }
        let Some(tokens) = &st.tokens else { return };
        let url = socket_url(&tokens.room, &tokens.session);
        st.socket_generation += 1;
        let generation = st.socket_generation;
        let ws = match WebSocket::new(&url) {
            Ok(ws) => ws,
            Err(_) => {
                drop(st);
                self.socket_closed(generation);
                return;
            }
        };
        let weak = Rc::downgrade(&me);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some(client) = weak.upgrade() {
                client.socket_message(generation, event);
            }
        });
        let weak = Rc::downgrade(&me);
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
            if let Some(client) = weak.upgrade() {
                client.socket_closed(generation);
            }
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        st.socket = Some(Socket {
            ws,
            _on_message: on_message,
            _on_close: on_close,
        });
    }

    fn socket_message(&self, generation: u64, event: MessageEvent) {
        if self.st.borrow().socket_generation != generation {
            return;
        }
        let Some(text) = event.data().as_string() else {
            return;
        };
        let message: RoomMessage = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                warn(&format!("presence: unreadable message: {e}"));
                return;
            }
        };
        let snapshot = matches!(message, RoomMessage::Snapshot(_));
        let forgotten = self.forgets_me(&message);
        if self.store.apply(message) == Applied::NeedsSnapshot {
            // A gap: reconnecting brings a fresh snapshot.
            self.connect_socket();
            return;
        }
        if snapshot {
            let mut st = self.st.borrow_mut();
            st.socket_synced = true;
            st.socket_failures = 0;
            drop(st);
            self.refresh_status();
        }
        if forgotten {
            // The server no longer has this tab (its store restarted empty, or the session
            // expired while the machine slept): heartbeat now instead of at the next interval.
            self.wake();
        }
    }

    /// True if `message` shows that the server has lost this tab's live session.
    fn forgets_me(&self, message: &RoomMessage) -> bool {
        let st = self.st.borrow();
        if st.tokens.is_none() || st.left || st.shut_down {
            return false;
        }
        match message {
            RoomMessage::Snapshot(snapshot) => !snapshot
                .users
                .iter()
                .any(|u| u.sessions.iter().any(|s| s.session_id == st.session)),
            RoomMessage::Left {
                session_id,
                reason: LeaveReason::Expired,
                ..
            } => *session_id == st.session,
            _ => false,
        }
    }

    fn socket_closed(&self, generation: u64) {
        let mut st = self.st.borrow_mut();
        if st.socket_generation != generation || st.shut_down || st.left {
            return;
        }
        st.socket = None;
        st.socket_synced = false;
        st.socket_failures += 1;
        let delay = self.backoff_ms(st.socket_failures);
        drop(st);
        self.refresh_status();
        let weak = self.this.borrow().clone();
        spawn_local(async move {
            TimeoutFuture::new(delay as u32).await;
            let Some(client) = weak.upgrade() else { return };
            let current = {
                let st = client.st.borrow();
                st.socket_generation == generation && st.socket.is_none()
            };
            if current {
                // A heartbeat first: after a server restart it rejoins and reconnects with
                // fresh tokens; otherwise reconnect with the tokens we have.
                client.wake();
                client.connect_socket();
            }
        });
    }

    fn set_state(&self, state: Value) {
        let joined = {
            let mut st = self.st.borrow_mut();
            st.state = Some(state).filter(|v| !v.is_null());
            st.tokens.is_some()
        };
        if joined {
            self.arm_state_flush(self.options.state_throttle_ms);
        }
    }

    /// Sends the latest state after `delay` ms, once per window (trailing edge).
    fn arm_state_flush(&self, delay: u64) {
        {
            let mut st = self.st.borrow_mut();
            if st.throttle_armed {
                return;
            }
            st.throttle_armed = true;
        }
        let weak = self.this.borrow().clone();
        spawn_local(async move {
            TimeoutFuture::new(delay as u32).await;
            let Some(client) = weak.upgrade() else { return };
            let (token, state) = {
                let mut st = client.st.borrow_mut();
                st.throttle_armed = false;
                if st.shut_down || st.left {
                    return;
                }
                let Some(tokens) = &st.tokens else { return };
                (
                    tokens.session.clone(),
                    st.state.clone().unwrap_or(Value::Null),
                )
            };
            if let Err(e) = crate::api::update_state(token, state).await {
                warn(&format!("presence update failed: {e}"));
                if matches!(e.0, PresenceError::InvalidSessionToken) {
                    client.wake(); // the session is gone: the next heartbeat rejoins
                }
            }
        });
    }

    fn set_name(&self, name: String) {
        let changed = {
            let mut st = self.st.borrow_mut();
            let changed = st.name != name;
            st.name = name;
            changed
        };
        if changed {
            self.wake();
        }
    }

    fn set_room(&self, room: String) {
        let old_token = {
            let mut st = self.st.borrow_mut();
            if st.room == room && !st.left {
                return;
            }
            st.room = room;
            st.room_generation += 1;
            st.proposed_token = random_token();
            st.left = false;
            st.heartbeat_ok = false;
            st.ever_connected = false;
            if let Some(socket) = st.socket.take() {
                socket.close();
            }
            st.socket_synced = false;
            st.tokens.take().map(|t| t.session)
        };
        if let Some(token) = old_token {
            spawn_local(disconnect_quietly(token));
        }
        self.store.clear();
        self.refresh_status();
        self.wake();
    }

    fn leave(&self) {
        let token = {
            let mut st = self.st.borrow_mut();
            st.left = true;
            if let Some(socket) = st.socket.take() {
                socket.close();
            }
            st.socket_synced = false;
            st.tokens.take().map(|t| t.session)
        };
        if let Some(token) = token {
            spawn_local(disconnect_quietly(token));
        }
        self.refresh_status();
    }

    fn shut_down(&self) {
        self.leave();
        let mut st = self.st.borrow_mut();
        st.shut_down = true;
        for l in st.listeners.drain(..) {
            let _ = l
                .target
                .remove_event_listener_with_callback(l.event, l.callback.as_ref().unchecked_ref());
        }
        self.kick.close_channel();
    }

    /// Tab closing: say goodbye with a beacon (the only request browsers let out), and send no
    /// heartbeat for a moment in case the page lives on (a cancelled unload, the back/forward cache).
    fn unloading(&self) {
        if !self.options.leave_on_unload {
            return;
        }
        let mut st = self.st.borrow_mut();
        st.paused_until = js_sys::Date::now() + 3_000.0;
        if let Some(socket) = st.socket.take() {
            socket.close();
        }
        st.socket_synced = false;
        if let Some(tokens) = st.tokens.take() {
            send_beacon(&tokens.session);
        }
    }

    fn shown_again(&self) {
        self.st.borrow_mut().paused_until = 0.0;
        self.wake();
    }

    fn visibility_changed(&self) {
        let hidden = is_hidden();
        {
            let mut st = self.st.borrow_mut();
            st.away = hidden;
            if !hidden {
                st.paused_until = 0.0;
            }
        }
        // Hidden: one heartbeat says "away" and stretches the deadline. Visible: at once.
        self.wake();
    }

    fn listen(&self) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let Some(me) = self.me() else { return };
        let document: EventTarget = match window.document() {
            Some(d) => d.into(),
            None => return,
        };
        let window: EventTarget = window.into();
        let add = |target: &EventTarget, event: &'static str, f: Handler| {
            let weak = Rc::downgrade(&me);
            let callback = Closure::<dyn FnMut(Event)>::new(move |e: Event| {
                if let Some(client) = weak.upgrade() {
                    f(&client, e);
                }
            });
            let _ =
                target.add_event_listener_with_callback(event, callback.as_ref().unchecked_ref());
            me.st.borrow_mut().listeners.push(Listener {
                target: target.clone(),
                event,
                callback,
            });
        };
        add(&window, "pagehide", Box::new(|c, _| c.unloading()));
        add(&window, "beforeunload", Box::new(|c, _| c.unloading()));
        add(
            &window,
            "pageshow",
            Box::new(|c, e| {
                if e.dyn_ref::<PageTransitionEvent>()
                    .is_some_and(|e| e.persisted())
                {
                    c.shown_again();
                }
            }),
        );
        add(
            &document,
            "visibilitychange",
            Box::new(|c, _| c.visibility_changed()),
        );
        add(
            &window,
            "online",
            Box::new(|c, _| {
                c.refresh_status();
                c.wake();
            }),
        );
        add(&window, "offline", Box::new(|c, _| c.refresh_status()));
    }
}

async fn heartbeat_loop(client: Rc<Client>, mut kicks: mpsc::UnboundedReceiver<()>) {
    loop {
        let wait = match client.next_heartbeat() {
            Ok(args) => {
                let user = client.user.borrow().clone();
                let result = crate::api::heartbeat(
                    args.room.clone(),
                    user,
                    args.session.clone(),
                    args.name.clone(),
                    Some(args.interval_ms),
                    args.state.clone(),
                    Some(args.away),
                    args.token.clone(),
                )
                .await;
                Some(client.after_heartbeat(&args, result))
            }
            Err(wait) => wait,
        };
        if client.st.borrow().shut_down {
            return;
        }
        let kicked = match wait {
            Some(0) => continue,
            Some(ms) => {
                let mut sleep = TimeoutFuture::new(ms.min(u32::MAX as u64) as u32).fuse();
                futures::select! {
                    _ = sleep => true,
                    k = kicks.next() => k.is_some(),
                }
            }
            None => kicks.next().await.is_some(),
        };
        if !kicked && client.st.borrow().shut_down {
            return;
        }
        // Several kicks while waiting make one heartbeat.
        while kicks.try_recv().is_ok() {}
    }
}

async fn disconnect_quietly(token: String) {
    let _ = crate::api::disconnect(token).await;
}

fn send_beacon(session_token: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Ok(params) = web_sys::UrlSearchParams::new() else {
        return;
    };
    params.append("session_token", session_token);
    let url = format!("{}/disconnect", crate::API_PREFIX);
    let _ = window
        .navigator()
        .send_beacon_with_opt_url_search_params(&url, Some(&params));
}

fn socket_url(room_token: &str, session_token: &str) -> String {
    let location = web_sys::window().map(|w| w.location());
    let secure = location
        .as_ref()
        .and_then(|l| l.protocol().ok())
        .is_some_and(|p| p == "https:");
    let host = location
        .and_then(|l| l.host().ok())
        .unwrap_or_else(|| "localhost".into());
    format!(
        "{}://{host}{SUBSCRIBE_PATH}?room_token={}&session_token={}",
        if secure { "wss" } else { "ws" },
        String::from(js_sys::encode_uri_component(room_token)),
        String::from(js_sys::encode_uri_component(session_token)),
    )
}

fn is_hidden() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden)
}

/// 64 hex digits from the browser's cryptographic random source (two v4 UUIDs: 244 random bits).
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
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

fn warn(message: &str) {
    web_sys::console::warn_1(&message.into());
}
