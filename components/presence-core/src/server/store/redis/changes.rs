//! Every change of the Redis store: load what the rules need ([`load`](super::load)), let the
//! rules decide ([`crate::server::rules`], the same functions the memory store calls), commit the
//! decision guarded by what it was made on ([`commit`](super::commit)); if the room changed
//! meanwhile, decide again.

use super::commit::{contended, Transition, MAX_TRIES};
use super::keys::{self, RoomKeys};
use super::load::{Ask, Loaded};
use super::RedisPresence;
use crate::error::PresenceError;
use crate::server::rules::{self, Change, Event, SessionFacts, UserFacts};
use crate::server::subscription::Occupancy;
use crate::server::token::SessionToken;
use crate::wire::{HeartbeatRequest, LeaveReason};

/// What a full heartbeat did: the session's token, and whether it joined.
pub(super) struct Beat {
    pub token: String,
    pub joined: bool,
}

/// A change being written: the transition and the room's seq as it moves.
struct Writer<'a> {
    presence: &'a RedisPresence,
    keys: &'a RoomKeys,
    t: Transition,
    seq: u64,
    /// The room's seq as loaded, and its count of untold changes since (see [`keys::seq_of`]).
    loaded_seq: u64,
    untold: u64,
    /// Live sessions in the room as this change leaves it.
    sessions: usize,
    /// Set when the session count moved from or to 0: goes with the next message.
    occupancy: Option<Occupancy>,
}

impl<'a> Writer<'a> {
    fn new(presence: &'a RedisPresence, keys: &'a RoomKeys, loaded: &Loaded) -> Self {
        let mut t = Transition::default();
        t.expect(&keys.seq(), &loaded.version);
        let untold = loaded
            .version
            .split_once('.')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0);
        Writer {
            presence,
            keys,
            t,
            seq: loaded.seq,
            loaded_seq: loaded.seq,
            untold,
            sessions: loaded.sessions,
            occupancy: None,
        }
    }

    fn layout(&self) -> &keys::Layout {
        &self.presence.inner.layout
    }

    /// Publishes one change of `user_id` (whose facts after it are `user`) at the next seq.
    fn emit(&mut self, event: Event, user_id: &str, user: Option<&UserFacts>) {
        self.seq += 1;
        let message = rules::message(&event, self.seq, user_id, user);
        let json = serde_json::to_string(&message).expect("messages serialize");
        self.t.set(&self.keys.seq(), &self.seq.to_string());
        let payload = keys::with_occupancy(self.occupancy.take(), json);
        self.t.publish(&self.keys.channel(), &payload);
    }

    fn put_user(&mut self, user_id: &str, facts: &UserFacts) {
        let json = serde_json::to_string(facts).expect("facts serialize");
        self.t.hset(&self.keys.users(), user_id, &json);
    }

    fn set_session_count(&mut self, n: usize) {
        self.occupancy = rules::occupancy(self.sessions, n).or(self.occupancy);
        self.sessions = n;
        if n == 0 {
            self.t.del(&self.keys.sessions());
        } else {
            self.t.set(&self.keys.sessions(), &n.to_string());
        }
    }

    /// The room's count of invisible live sessions is now `n`.
    fn set_hidden_count(&mut self, n: usize) {
        if n == 0 {
            self.t.del(&self.keys.hidden());
        } else {
            self.t.set(&self.keys.hidden(), &n.to_string());
        }
    }

    /// The user holds a session in this room from `at` on (for the per-user caps).
    fn hold_session(&mut self, user_id: &str, sid: &str, at: u64) {
        let key = self.layout().user_rooms(user_id);
        let version = SessionToken::generate().to_hex();
        let field = keys::held_session(self.keys.room(), sid);
        self.t.hold(&key, &field, &at.to_string(), &version);
    }

    /// The user no longer holds this session of this room.
    fn free_session(&mut self, user_id: &str, sid: &str) {
        let key = self.layout().user_rooms(user_id);
        let version = SessionToken::generate().to_hex();
        let field = keys::held_session(self.keys.room(), sid);
        self.t.free(&key, &field, &version);
    }

    fn schedule(&mut self, at: u64, member: &str) {
        let wake = self.layout().wake();
        self.t.schedule(self.keys.deadlines(), at, member, &wake);
    }

    /// Ends an offline user's listing (its facts as read, if known): one `Removed`. Facts that
    /// hold an invisible session stay, unlisted (see [`rules::unlist`]); otherwise they go.
    fn drop_offline(&mut self, user_id: &str, facts: Option<&UserFacts>) {
        match facts.cloned().map(|mut f| (rules::unlist(&mut f), f)) {
            Some((true, kept)) => self.put_user(user_id, &kept),
            _ => self.forget_user(user_id),
        }
        self.t.zrem(&self.keys.offline(), user_id);
        self.t.zrem(
            self.keys.deadlines(),
            &self.keys.retention_deadline(user_id),
        );
        self.emit(Event::Removed, user_id, None);
    }

    /// Removes a user's facts (nobody is told: see the callers).
    fn forget_user(&mut self, user_id: &str) {
        let listed = self.layout().user_listed(user_id);
        self.t.hdel(&self.keys.users(), user_id);
        self.t.srem(&listed, self.keys.room());
    }

    /// Commits, guarded on the room's seq as loaded. A change that told nobody (an invisible
    /// session's) still moves the stored value, so that every other change decided on what it
    /// replaced is decided again.
    async fn commit(&mut self) -> Result<bool, PresenceError> {
        if self.seq == self.loaded_seq {
            let untold = format!("{}.{}", self.seq, self.untold + 1);
            self.t.set(&self.keys.seq(), &untold);
        }
        self.presence.commit(&self.t).await
    }
}

/// A session hash's status mark (see [`keys::status_mark`]) from its facts.
fn mark_of(user: &UserFacts, session: &str) -> &'static str {
    match user.session(session) {
        Some(s) => keys::status_mark(
            s.away,
            s.idle_since.is_some(),
            s.kind,
            user.is_hidden(session),
        ),
        None => "",
    }
}

impl RedisPresence {
    /// Joins, or keeps alive and changes, a session (the heartbeat that the fast path could not
    /// answer). The request is validated; `token` is the one it carries (hex), if any.
    pub(super) async fn full_heartbeat(
        &self,
        request: &HeartbeatRequest,
        name: &str,
        token: Option<SessionToken>,
        now: u64,
        expires_at: u64,
    ) -> Result<Beat, PresenceError> {
        let keys = self.inner.layout.room(&request.room);
        // (`token` is in the room's group already: see `heartbeat`.)
        let hex = token.map(|t| t.to_hex());
        let _turn = self.inner.turns.take(&request.room).await;
        for _ in 0..MAX_TRIES {
            let loaded = self
                .load(
                    &keys,
                    Ask {
                        session: Some(&request.session),
                        user: Some(&request.user),
                        rooms: true,
                        token: hex.as_deref(),
                    },
                )
                .await?;
            // (The facts read are the requesting user's: only a session of that user can be
            // judged an orphan here; another user's session is refused below.)
            if loaded.field("user") == request.user && is_orphan(&loaded, &request.session) {
                self.drop_orphan(&keys, &request.session, &loaded).await?;
                continue;
            }
            let done = if loaded.session.is_empty() {
                self.join(&keys, request, name, token, &loaded, now, expires_at)
                    .await?
            } else {
                self.beat(&keys, request, hex.as_deref(), &loaded, now, expires_at)
                    .await?
            };
            if let Some(beat) = done {
                return Ok(beat);
            }
        }
        Err(contended())
    }

    #[allow(clippy::too_many_arguments)]
    async fn join(
        &self,
        keys: &RoomKeys,
        request: &HeartbeatRequest,
        name: &str,
        proposed: Option<SessionToken>,
        loaded: &Loaded,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<Beat>, PresenceError> {
        if let Err(refused) = rules::check_join(
            &self.inner.config,
            &request.room,
            loaded.sessions + loaded.hidden,
            loaded.holdings(&request.room),
            request.kind,
        ) {
            let per_user = matches!(
                refused,
                PresenceError::TooManyRooms { .. } | PresenceError::TooManySessions { .. }
            );
            // With slot groups a count can be left too high (see `commit`): recount before
            // refusing, and decide again if it was.
            if per_user
                && self.inner.layout.groups() > 1
                && self
                    .recount_user(&request.user, &loaded.held, &loaded.rooms_version, now)
                    .await?
            {
                return Ok(None);
            }
            return Err(refused);
        }
        let token = self
            .inner
            .layout
            .token_in_group(
                rules::session_token(proposed, |_| loaded.token_taken),
                keys.group(),
            )
            .to_hex();
        let mut w = Writer::new(self, keys, loaded);
        let session = rules::new_session(request, name, now, w.seq + 1);
        let listed = loaded.user.is_some();
        let mut user = loaded.user.clone().unwrap_or_else(UserFacts::unlisted);
        let was_offline = user.offline_since().is_some();
        if request.invisible {
            rules::join_hidden(&mut user, session);
        } else {
            rules::join(&mut user, session, now);
        }
        let sk = keys.session(&request.session);
        let layout = self.inner.layout.clone();
        w.t.expect_field(&sk, "tok", "")
            .expect(&layout.token(&token), "")
            .expect_field(
                &layout.user_rooms(&request.user),
                keys::VERSION_FIELD,
                &loaded.rooms_version,
            );
        for (field, value) in [
            ("user", request.user.as_str()),
            ("tok", &token),
            ("name", name),
            ("away", mark_of(&user, &request.session)),
            ("exp", &expires_at.to_string()),
            ("hb", &now.to_string()),
            ("subs", "0"),
        ] {
            w.t.hset(&sk, field, value);
        }
        w.t.set(
            &layout.token(&token),
            &format!("{}\n{}", request.room, request.session),
        );
        w.put_user(&request.user, &user);
        if !listed {
            w.t.sadd(&layout.user_listed(&request.user), &request.room);
        }
        if request.invisible {
            w.set_hidden_count(loaded.hidden + 1);
        } else {
            w.set_session_count(loaded.sessions + 1);
        }
        // Held already (a join of this session that is in flight elsewhere, or one whose room
        // never committed): left as it is, so that the other join's undo cannot free it.
        let held = loaded
            .held
            .iter()
            .any(|(room, sid, _)| *room == request.room && *sid == request.session);
        if !held {
            w.hold_session(&request.user, &request.session, now);
        }
        if was_offline && !request.invisible {
            w.t.zrem(&keys.offline(), &request.user);
            w.t.zrem(keys.deadlines(), &keys.retention_deadline(&request.user));
        }
        w.schedule(expires_at, &keys.session_deadline(&request.session));
        if !request.invisible {
            w.emit(
                Event::Joined {
                    session: request.session.clone(),
                },
                &request.user,
                Some(&user),
            );
        }
        Ok(w.commit().await?.then_some(Beat {
            token,
            joined: true,
        }))
    }

    /// A heartbeat of a live session: extends it, and applies what it changes.
    async fn beat(
        &self,
        keys: &RoomKeys,
        request: &HeartbeatRequest,
        token: Option<&str>,
        loaded: &Loaded,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<Beat>, PresenceError> {
        let current_token = loaded.field("tok").to_string();
        if token != Some(current_token.as_str()) {
            return Err(PresenceError::SessionTokenMismatch {
                session: request.session.clone(),
            });
        }
        if loaded.field("user") != request.user {
            return Err(PresenceError::Forbidden {
                reason: "this session belongs to another user".into(),
            });
        }
        let mut user = loaded.user.clone().ok_or_else(|| missing("user"))?;
        let current = user
            .session(&request.session)
            .ok_or_else(|| missing("session"))?;
        let change = rules::heartbeat_change(current, request, now)?;
        let hidden = user.is_hidden(&request.session);
        let flip = request.invisible != hidden;
        let sk = keys.session(&request.session);
        let mut w = Writer::new(self, keys, loaded);
        w.t.expect_field(&sk, "tok", &current_token)
            .expect_field(&sk, "grace", loaded.field("grace"))
            .expect_field(&sk, "gs", loaded.field("gs"));
        w.t.hset(&sk, "exp", &expires_at.to_string()).hset(
            &sk,
            "hb",
            &now.max(loaded.number("hb")).to_string(),
        );
        // A heartbeat takes back a grace (a closed socket's, a goodbye's) set before it, not one
        // set after it arrived (a goodbye that overtook it while it was being decided).
        if grace_set_before(loaded, now) {
            w.t.hdel(&sk, "grace").hdel(&sk, "bye").hdel(&sk, "gs");
        }
        w.schedule(expires_at, &keys.session_deadline(&request.session));
        // What changed is told by the flip's message, if it flips.
        self.write_change(
            &mut w,
            &sk,
            &request.user,
            &mut user,
            &request.session,
            change,
            !flip,
        );
        if flip {
            let session = request.session.clone();
            let mut went_offline = None;
            let event = if hidden {
                if user.offline_since().is_some() {
                    // Back from offline.
                    w.t.zrem(&keys.offline(), &request.user);
                    w.t.zrem(keys.deadlines(), &keys.retention_deadline(&request.user));
                }
                rules::reveal(&mut user, &session, now, w.seq + 1);
                w.set_session_count(loaded.sessions + 1);
                w.set_hidden_count(loaded.hidden.saturating_sub(1));
                Event::Joined { session }
            } else {
                let until = rules::hide(&mut user, &session, now, &self.inner.config)
                    .ok_or_else(|| missing("session"))?;
                if let (Some(until), Some(last_seen)) = (until, user.last_seen) {
                    // Offline to others: kept as any offline user is.
                    w.t.zadd(&keys.offline(), last_seen, &request.user);
                    w.schedule(until, &keys.retention_deadline(&request.user));
                    went_offline = Some(last_seen);
                }
                w.set_session_count(loaded.sessions.saturating_sub(1));
                w.set_hidden_count(loaded.hidden + 1);
                Event::Left {
                    session,
                    reason: LeaveReason::Disconnected,
                }
            };
            w.t.hset(&sk, "away", mark_of(&user, &request.session));
            w.put_user(&request.user, &user);
            w.emit(event, &request.user, Some(&user));
            if let Some(last_seen) = went_offline {
                self.cap_offline(&mut w, keys, loaded, &request.user, &user, last_seen)
                    .await?;
            }
        }
        Ok(w.commit().await?.then_some(Beat {
            token: current_token,
            joined: false,
        }))
    }

    /// Writes a change of one session (if it changes anything): the facts, the name and status
    /// mark the fast path compares with, and (if `tell`, and the session is visible) one
    /// `Updated`.
    #[allow(clippy::too_many_arguments)]
    fn write_change(
        &self,
        w: &mut Writer<'_>,
        sk: &str,
        user_id: &str,
        user: &mut UserFacts,
        session: &str,
        change: Change,
        tell: bool,
    ) -> bool {
        let name = change.name.clone();
        let status = change.away.is_some() || change.idle.is_some();
        if !rules::apply(user, session, change) {
            return false;
        }
        if let Some(name) = name {
            w.t.hset(sk, "name", &name);
        }
        if status {
            w.t.hset(sk, "away", mark_of(user, session));
        }
        w.put_user(user_id, user);
        if tell && !user.is_hidden(session) {
            w.emit(
                Event::Updated {
                    session: session.to_string(),
                },
                user_id,
                Some(user),
            );
        }
        true
    }

    /// The room and session a token grants (`None`: no live session holds it).
    async fn resolve(&self, token: &str) -> Result<Option<(String, String)>, PresenceError> {
        let mut conn = self.inner.conn.clone();
        let at: Option<String> = self.answered(
            redis::cmd("GET")
                .arg(self.inner.layout.token(token))
                .query_async(&mut conn)
                .await,
        )?;
        Ok(at.and_then(|at| {
            let (room, sid) = at.split_once('\n')?;
            Some((room.to_string(), sid.to_string()))
        }))
    }

    /// The room and session a token grants, or the typed error if none does.
    async fn granted(&self, token: &str) -> Result<(String, String), PresenceError> {
        self.resolve(token)
            .await?
            .ok_or(PresenceError::InvalidSessionToken)
    }

    /// Loads the live session a token grants (checking `as_user`), for a change to it.
    async fn load_by_token(
        &self,
        (room, sid): &(String, String),
        token: &str,
        as_user: Option<&str>,
    ) -> Result<(RoomKeys, String, Loaded), PresenceError> {
        let keys = self.inner.layout.room(room);
        let sid = sid.clone();
        let loaded = self
            .load(
                &keys,
                Ask {
                    session: Some(&sid),
                    ..Ask::default()
                },
            )
            .await?;
        if loaded.field("tok") != token {
            return Err(PresenceError::InvalidSessionToken);
        }
        if is_orphan(&loaded, &sid) {
            self.drop_orphan(&keys, &sid, &loaded).await?;
            return Err(PresenceError::InvalidSessionToken);
        }
        if as_user.is_some_and(|u| u != loaded.field("user")) {
            return Err(PresenceError::Forbidden {
                reason: "this session belongs to another user".into(),
            });
        }
        Ok((keys, sid, loaded))
    }

    /// The session a token grants is going: it ends after the leave grace unless it heartbeats
    /// again first (with no grace, now).
    pub(super) async fn going_by_token(
        &self,
        token: &str,
        as_user: Option<&str>,
    ) -> Result<(), PresenceError> {
        let config = &self.inner.config;
        if config.leave_grace_ms == 0 {
            return self.end_by_token(token, as_user).await;
        }
        let granted = self.granted(token).await?;
        let layout = self.inner.layout.clone();
        for _ in 0..MAX_TRIES {
            let (keys, sid, loaded) = self.load_by_token(&granted, token, as_user).await?;
            let now = self.now_ms();
            let until = rules::earlier_grace(
                loaded.field("grace").parse().ok(),
                rules::goodbye_deadline(now, config),
            );
            let sk = keys.session(&sid);
            let mut t = Transition::default();
            t.expect_field(&sk, "tok", token)
                .expect_field(&sk, "grace", loaded.field("grace"))
                .hset(&sk, "grace", &until.to_string())
                .hset(&sk, "gs", &now.to_string())
                .hset(&sk, "bye", &now.to_string())
                .schedule(
                    keys.deadlines(),
                    until,
                    &keys.session_deadline(&sid),
                    &layout.wake(),
                );
            t.publish(&layout.forget(), token);
            if self.commit(&t).await? {
                return Ok(());
            }
        }
        Err(contended())
    }

    /// Changes a live session's state or away flag as `decide` says.
    pub(super) async fn change_session(
        &self,
        token: &str,
        as_user: Option<&str>,
        decide: impl Fn(&SessionFacts) -> Change,
    ) -> Result<(), PresenceError> {
        let granted = self.granted(token).await?;
        let _turn = self.inner.turns.take(&granted.0).await;
        for _ in 0..MAX_TRIES {
            let (keys, sid, loaded) = self.load_by_token(&granted, token, as_user).await?;
            let user_id = loaded.user_id.clone();
            let mut user = loaded.user.clone().ok_or_else(|| missing("user"))?;
            let change = decide(user.session(&sid).ok_or_else(|| missing("session"))?);
            let activity = change.state.is_some();
            let sk = keys.session(&sid);
            let mut w = Writer::new(self, &keys, &loaded);
            w.t.expect_field(&sk, "tok", token);
            if !self.write_change(&mut w, &sk, &user_id, &mut user, &sid, change, true) {
                return Ok(());
            }
            if activity {
                let now = self.now_ms();
                let hb = rules::heard_from(loaded.number("hb"), now);
                w.t.hset(&sk, "hb", &hb.to_string());
            }
            if w.commit().await? {
                return Ok(());
            }
        }
        Err(contended())
    }

    /// Ends the live session a token grants (a goodbye).
    pub(super) async fn end_by_token(
        &self,
        token: &str,
        as_user: Option<&str>,
    ) -> Result<(), PresenceError> {
        let granted = self.granted(token).await?;
        let _turn = self.inner.turns.take(&granted.0).await;
        for _ in 0..MAX_TRIES {
            let (keys, sid, loaded) = self.load_by_token(&granted, token, as_user).await?;
            let now = self.now_ms();
            if self
                .end_session(&keys, &sid, &loaded, LeaveReason::Disconnected, now)
                .await?
            {
                return Ok(());
            }
        }
        Err(contended())
    }

    /// Ends a loaded session: one `Left`; if its user went offline, the offline cap may drop
    /// one offline user (one `Removed`). `false` if the room changed meanwhile.
    async fn end_session(
        &self,
        keys: &RoomKeys,
        sid: &str,
        loaded: &Loaded,
        reason: LeaveReason,
        now: u64,
    ) -> Result<bool, PresenceError> {
        let config = &self.inner.config;
        let layout = self.inner.layout.clone();
        let user_id = loaded.user_id.clone();
        let mut user = loaded.user.clone().ok_or_else(|| missing("user"))?;
        let left = rules::leave(&mut user, sid, loaded.number("hb"), reason, now, config)
            .ok_or_else(|| missing("session"))?;
        let sk = keys.session(sid);
        let token = loaded.field("tok").to_string();
        let mut w = Writer::new(self, keys, loaded);
        w.t.expect_field(&sk, "tok", &token)
            .expect_field(&sk, "exp", loaded.field("exp"))
            .expect_field(&sk, "grace", loaded.field("grace"))
            .expect_field(&sk, "bye", loaded.field("bye"));
        w.t.del(&sk)
            .del(&layout.token(&token))
            .zrem(keys.deadlines(), &keys.session_deadline(sid));
        if left.forgotten {
            // Its only sessions were invisible: it goes as it came, unseen.
            w.forget_user(&user_id);
        } else {
            w.put_user(&user_id, &user);
        }
        if left.shown {
            w.set_session_count(loaded.sessions.saturating_sub(1));
        } else {
            w.set_hidden_count(loaded.hidden.saturating_sub(1));
        }
        w.free_session(&user_id, sid);
        if let (Some(until), Some(last_seen)) = (left.retained_until, user.last_seen) {
            w.t.zadd(&keys.offline(), last_seen, &user_id);
            w.schedule(until, &keys.retention_deadline(&user_id));
        }
        if left.shown {
            w.emit(
                Event::Left {
                    session: sid.to_string(),
                    reason,
                },
                &user_id,
                Some(&user),
            );
        }
        if let (Some(_), Some(last_seen)) = (left.retained_until, user.last_seen) {
            self.cap_offline(&mut w, keys, loaded, &user_id, &user, last_seen)
                .await?;
        }
        let applied = w.commit().await?;
        if applied && loaded.offline + 1 > config.max_offline_users_per_room + 1 {
            // Over by more than one (the cap was lowered): drop the rest one at a time. The
            // session has ended whatever happens here; what is left over is dropped at the next
            // leave in the room.
            let _ = self.enforce_offline_cap(keys).await;
        }
        Ok(applied)
    }

    /// `user_id` (facts `user`) went offline, last seen `last_seen`: if the room now lists one
    /// offline user too many, the cap's victim goes in the same commit (its facts read first,
    /// in case an invisible session of it lives).
    async fn cap_offline(
        &self,
        w: &mut Writer<'_>,
        keys: &RoomKeys,
        loaded: &Loaded,
        user_id: &str,
        user: &UserFacts,
        last_seen: u64,
    ) -> Result<(), PresenceError> {
        if !rules::over_offline_cap(loaded.offline + 1, &self.inner.config) {
            return Ok(());
        }
        let candidates = loaded
            .oldest_offline
            .iter()
            .map(|(id, at)| (id.as_str(), *at))
            .chain([(user_id, last_seen)]);
        let Some(victim) = rules::offline_victim(candidates).map(str::to_string) else {
            return Ok(());
        };
        let facts = if victim == user_id {
            Some(user.clone())
        } else {
            self.facts_of(keys, &victim).await?
        };
        w.drop_offline(&victim, facts.as_ref());
        Ok(())
    }

    /// A user's facts in a room, as stored now.
    async fn facts_of(
        &self,
        keys: &RoomKeys,
        user_id: &str,
    ) -> Result<Option<UserFacts>, PresenceError> {
        let mut conn = self.inner.conn.clone();
        let json: Option<String> = self.answered(
            redis::cmd("HGET")
                .arg(keys.users())
                .arg(user_id)
                .query_async(&mut conn)
                .await,
        )?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Drops offline users while the room lists more than the cap allows.
    async fn enforce_offline_cap(&self, keys: &RoomKeys) -> Result<(), PresenceError> {
        let mut failed = 0;
        while failed < MAX_TRIES {
            let loaded = self.load(keys, Ask::default()).await?;
            if !rules::over_offline_cap(loaded.offline, &self.inner.config) {
                return Ok(());
            }
            let candidates = loaded
                .oldest_offline
                .iter()
                .map(|(id, at)| (id.as_str(), *at));
            let Some(victim) = rules::offline_victim(candidates).map(str::to_string) else {
                return Ok(());
            };
            let facts = self.facts_of(keys, &victim).await?;
            let mut w = Writer::new(self, keys, &loaded);
            w.drop_offline(&victim, facts.as_ref());
            if !w.commit().await? {
                failed += 1;
            }
        }
        Err(contended())
    }

    /// Acts on one claimed deadline (see claim.lua): ends a session whose deadline passed,
    /// drops an offline user whose retention is over, or queues the entry at its real time.
    pub(super) async fn act_on_deadline(
        &self,
        member: &str,
        now: u64,
    ) -> Result<(), PresenceError> {
        let mut parts = member.splitn(3, '\n');
        let (Some(kind), Some(room), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(());
        };
        let layout = self.inner.layout.clone();
        let keys = layout.room(room);
        let dl = keys.deadlines().to_string();
        let _turn = self.inner.turns.take(room).await;
        for _ in 0..MAX_TRIES {
            let mut t = Transition::default();
            if kind == "s" {
                let loaded = self
                    .load(
                        &keys,
                        Ask {
                            session: Some(id),
                            ..Ask::default()
                        },
                    )
                    .await?;
                if is_orphan(&loaded, id) {
                    return self.drop_orphan(&keys, id, &loaded).await;
                }
                if loaded.session.is_empty() {
                    // Ended meanwhile (unless a new session of that id is queued since).
                    t.expect_field(&keys.session(id), "tok", "")
                        .zrem(&dl, member);
                } else {
                    let grace = loaded.field("grace").parse().ok();
                    let deadline = rules::session_deadline(loaded.number("exp"), grace);
                    if deadline <= now {
                        let (reason, at) = rules::ending(loaded.field("bye").parse().ok(), now);
                        if self.end_session(&keys, id, &loaded, reason, at).await? {
                            return Ok(());
                        }
                        continue;
                    }
                    // Extended since it was queued: queue it at its real deadline (unless a
                    // grace was set meanwhile, which queued it earlier: decide again).
                    t.expect_field(&keys.session(id), "tok", loaded.field("tok"))
                        .expect_field(&keys.session(id), "grace", loaded.field("grace"))
                        .requeue(&dl, deadline, member, &layout.wake());
                }
            } else {
                let loaded = self
                    .load(
                        &keys,
                        Ask {
                            user: Some(id),
                            ..Ask::default()
                        },
                    )
                    .await?;
                let mut w = Writer::new(self, &keys, &loaded);
                match loaded.user.as_ref().and_then(UserFacts::offline_since) {
                    Some(last_seen) => {
                        let until = rules::retention_until(last_seen, &self.inner.config);
                        if until <= now {
                            w.drop_offline(id, loaded.user.as_ref());
                        } else {
                            w.t.requeue(&dl, until, member, &layout.wake());
                        }
                    }
                    None => {
                        w.t.zrem(&dl, member);
                        if loaded.user.is_none() {
                            // Not listed: no offline entry either (an older version's leftover).
                            w.t.zrem(&keys.offline(), id);
                        }
                    }
                }
                if w.commit().await? {
                    return Ok(());
                }
                continue;
            }
            if self.commit(&t).await? {
                return Ok(());
            }
        }
        Err(contended())
    }

    /// Each user's status across the rooms that list it, in the order asked: two pipelined
    /// reads (the rooms of every user, then every listing), not one snapshot of all rooms.
    pub(super) async fn status_of(
        &self,
        users: &[String],
    ) -> Result<Vec<crate::wire::UserStatus>, PresenceError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let layout = &self.inner.layout;
        let rooms: Vec<Vec<String>> = self
            .query_each(
                users
                    .iter()
                    .map(|user| {
                        let key = layout.user_listed(user);
                        let mut cmd = redis::cmd("SMEMBERS");
                        cmd.arg(&key);
                        (key, cmd)
                    })
                    .collect(),
            )
            .await?;
        let mut wanted: Vec<(&str, &str)> = Vec::new();
        for (user, rooms) in users.iter().zip(&rooms) {
            wanted.extend(rooms.iter().map(|room| (room.as_str(), user.as_str())));
        }
        let facts = self.listings(wanted).await?;
        let mut facts = facts.into_iter();
        Ok(users
            .iter()
            .zip(&rooms)
            .map(|(user, rooms)| {
                let listed: Vec<UserFacts> = facts
                    .by_ref()
                    .take(rooms.len())
                    .flatten()
                    .filter_map(|json| serde_json::from_str(&json).ok())
                    .collect();
                rules::user_status(user, &listed)
            })
            .collect())
    }

    /// Removes a user and its sessions from a room. True if it was listed.
    pub(super) async fn remove_user(
        &self,
        room: &str,
        user_id: &str,
    ) -> Result<bool, PresenceError> {
        let layout = self.inner.layout.clone();
        let keys = layout.room(room);
        let _turn = self.inner.turns.take(room).await;
        for _ in 0..MAX_TRIES {
            let loaded = self
                .load(
                    &keys,
                    Ask {
                        user: Some(user_id),
                        ..Ask::default()
                    },
                )
                .await?;
            let Some(user) = &loaded.user else {
                return Ok(false);
            };
            let sessions: Vec<SessionFacts> =
                user.sessions.iter().chain(&user.hidden).cloned().collect();
            let tokens = self.session_tokens(&keys, &sessions).await?;
            let mut w = Writer::new(self, &keys, &loaded);
            for (session, token) in sessions.iter().zip(&tokens) {
                let sk = keys.session(&session.id);
                w.t.expect_field(&sk, "tok", token);
                w.t.del(&sk)
                    .del(&layout.token(token))
                    .zrem(keys.deadlines(), &keys.session_deadline(&session.id));
            }
            if user.is_online() {
                let n = user.sessions.len();
                w.set_session_count(loaded.sessions.saturating_sub(n));
            }
            if !user.hidden.is_empty() {
                w.set_hidden_count(loaded.hidden.saturating_sub(user.hidden.len()));
            }
            for session in &sessions {
                w.free_session(user_id, &session.id);
            }
            if user.is_listed() {
                w.drop_offline(user_id, None);
            } else {
                w.forget_user(user_id);
            }
            if w.commit().await? {
                return Ok(true);
            }
        }
        Err(contended())
    }

    async fn session_tokens(
        &self,
        keys: &RoomKeys,
        sessions: &[SessionFacts],
    ) -> Result<Vec<String>, PresenceError> {
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for s in sessions {
            pipe.hget(keys.session(&s.id), "tok");
        }
        let mut conn = self.inner.conn.clone();
        let tokens: Vec<Option<String>> = self.answered(pipe.query_async(&mut conn).await)?;
        Ok(tokens.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// A subscription holds the session a token grants: no grace deadline while it is open.
    /// Returns the session id.
    pub(super) async fn hold_session(
        &self,
        token: &str,
        as_user: Option<&str>,
        room: &str,
    ) -> Result<String, PresenceError> {
        let granted = self.granted(token).await?;
        for _ in 0..MAX_TRIES {
            let (keys, sid, loaded) = self.load_by_token(&granted, token, as_user).await?;
            if keys.room() != room {
                return Err(PresenceError::InvalidSessionToken);
            }
            let sk = keys.session(&sid);
            let subs = loaded.number("subs");
            let mut t = Transition::default();
            t.expect_field(&sk, "tok", token)
                .expect_field(&sk, "subs", loaded.field("subs"))
                .hset(&sk, "subs", &(subs + 1).to_string())
                .hdel(&sk, "grace")
                .hdel(&sk, "bye")
                .hdel(&sk, "gs");
            if self.commit(&t).await? {
                return Ok(sid);
            }
        }
        Err(contended())
    }

    /// A subscription that held a session closed: the last one gone, the session gets the grace
    /// deadline.
    pub(super) async fn release_session(
        &self,
        room: &str,
        sid: &str,
        token: &str,
        grace_ms: u64,
    ) -> Result<(), PresenceError> {
        let layout = self.inner.layout.clone();
        let keys = layout.room(room);
        let sk = keys.session(sid);
        for _ in 0..MAX_TRIES {
            let mut conn = self.inner.conn.clone();
            let (tok, subs, grace): (Option<String>, Option<String>, Option<String>) = self
                .answered(
                    redis::cmd("HMGET")
                        .arg(&sk)
                        .arg("tok")
                        .arg("subs")
                        .arg("grace")
                        .query_async(&mut conn)
                        .await,
                )?;
            if tok.as_deref() != Some(token) {
                return Ok(()); // ended meanwhile
            }
            let subs = subs.unwrap_or_default();
            let left = subs.parse::<u64>().unwrap_or(0).saturating_sub(1);
            let mut t = Transition::default();
            let grace = grace.unwrap_or_default();
            t.expect_field(&sk, "tok", token)
                .expect_field(&sk, "subs", &subs)
                .expect_field(&sk, "grace", &grace)
                .hset(&sk, "subs", &left.to_string());
            if left == 0 {
                let now = self.now_ms();
                let until = rules::earlier_grace(grace.parse().ok(), now + grace_ms);
                t.hset(&sk, "grace", &until.to_string())
                    .hset(&sk, "gs", &now.to_string())
                    .schedule(
                        keys.deadlines(),
                        until,
                        &keys.session_deadline(sid),
                        &layout.wake(),
                    );
                t.publish(&layout.forget(), token);
            }
            if self.commit(&t).await? {
                return Ok(());
            }
        }
        Err(contended())
    }
}

/// Whether a heartbeat at `now` takes back the session's grace (see [`rules::takes_back_grace`]).
fn grace_set_before(loaded: &Loaded, now: u64) -> bool {
    rules::takes_back_grace(loaded.field("gs").parse().ok(), now)
}

/// A session hash that its user's facts do not list: data written by an older version (whose
/// layout this one does not read) or by something else.
fn is_orphan(loaded: &Loaded, sid: &str) -> bool {
    !loaded.session.is_empty()
        && loaded
            .user
            .as_ref()
            .is_none_or(|u| u.session(sid).is_none())
}

impl RedisPresence {
    /// Removes an orphan session (see [`is_orphan`]) with its token and deadline, so that it
    /// neither blocks its session id nor comes due forever. Nobody is told: no room lists it.
    async fn drop_orphan(
        &self,
        keys: &RoomKeys,
        sid: &str,
        loaded: &Loaded,
    ) -> Result<(), PresenceError> {
        let layout = &self.inner.layout;
        let sk = keys.session(sid);
        let token = loaded.field("tok");
        let mut t = Transition::default();
        t.expect_field(&sk, "tok", token)
            .del(&sk)
            .zrem(keys.deadlines(), &keys.session_deadline(sid));
        if !token.is_empty() {
            t.del(&layout.token(token));
        }
        self.commit(&t).await.map(drop)
    }
}

/// Facts that the session's hash says exist but the room does not list (only between a load
/// that saw them and a commit: [`is_orphan`] sessions are removed first).
fn missing(what: &str) -> PresenceError {
    PresenceError::Unavailable {
        message: format!("the presence store's data is inconsistent (no {what} facts)"),
    }
}
