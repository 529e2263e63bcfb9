//! Where a subscription socket's events go. A socket opened with the machine's tokens is the
//! machine's from the start. A socket that joins (`subscribe?join=1`) first answers the heartbeat
//! sent on it; what follows the answer is held until the machine, having taken the answer, opens
//! the socket as its own, then delivered in order. No browser in here: the driver feeds it the
//! socket's events.

// Only the browser builds drive it; native builds compile it for its tests.
#![cfg_attr(not(any(feature = "hydrate", feature = "csr")), allow(dead_code))]

use crate::socket_join::JoinAnswer;
use presence_core::wire::HeartbeatResponse;
use presence_core::PresenceError;

/// Something that happened on a socket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SocketEvent {
    /// A text message.
    Message(String),
    /// The socket closed (or failed to open).
    Closed,
}

/// A socket's route.
#[derive(Debug, PartialEq)]
pub(crate) enum Route {
    /// A socket that joins, waiting for the answer to its heartbeat.
    Answering,
    /// Answered; what came after waits for the machine.
    Holding(Vec<SocketEvent>),
    /// The machine's socket of this generation.
    Live(u64),
    /// Nobody's any more.
    Dropped,
}

/// What the driver does with an event.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    /// The heartbeat's answer. `None`: the socket closed, or said something else, before
    /// answering; the heartbeat goes over HTTP instead (the socket is of no more use).
    Answered(Option<Result<HeartbeatResponse, PresenceError>>),
    /// Give the machine this event of its socket of this generation.
    Deliver(u64, SocketEvent),
    /// Nothing now.
    Nothing,
}

impl Route {
    /// Routes one event.
    pub fn on(&mut self, event: SocketEvent) -> Step {
        match self {
            Route::Answering => {
                let answer = match event {
                    SocketEvent::Message(text) => match serde_json::from_str(&text) {
                        Ok(JoinAnswer::Heartbeat { answer }) => Some(Ok(answer)),
                        Ok(JoinAnswer::Error { error }) => Some(Err(error)),
                        Err(_) => None,
                    },
                    SocketEvent::Closed => None,
                };
                *self = match answer {
                    Some(Ok(_)) => Route::Holding(Vec::new()),
                    _ => Route::Dropped,
                };
                Step::Answered(answer)
            }
            Route::Holding(held) => {
                held.push(event);
                Step::Nothing
            }
            Route::Live(generation) => Step::Deliver(*generation, event),
            Route::Dropped => Step::Nothing,
        }
    }

    /// The machine takes this socket as its socket of `generation`: what was held, to deliver
    /// now, before anything that comes later.
    pub fn go_live(&mut self, generation: u64) -> Vec<SocketEvent> {
        match std::mem::replace(self, Route::Live(generation)) {
            Route::Holding(held) => held,
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SocketEvent::{Closed, Message};

    fn answer_text() -> String {
        let answer = HeartbeatResponse::new("ada", "st", "rt", true, 10_000, 42);
        serde_json::to_string(&JoinAnswer::Heartbeat { answer }).unwrap()
    }

    #[test]
    fn a_joining_socket_answers_then_holds_until_the_machine_takes_it_then_delivers_in_order() {
        let mut route = Route::Answering;
        match route.on(Message(answer_text())) {
            Step::Answered(Some(Ok(answer))) => {
                assert_eq!((answer.session_token.as_str(), answer.joined), ("st", true))
            }
            other => panic!("{other:?}"),
        }
        // The subscription's first messages arrive before the machine has taken the answer.
        assert_eq!(route.on(Message("snapshot".into())), Step::Nothing);
        assert_eq!(route.on(Message("joined".into())), Step::Nothing);
        assert_eq!(
            route.go_live(7),
            vec![Message("snapshot".into()), Message("joined".into())]
        );
        assert_eq!(
            route.on(Message("left".into())),
            Step::Deliver(7, Message("left".into()))
        );
        assert_eq!(route.on(Closed), Step::Deliver(7, Closed));
    }

    #[test]
    fn a_close_while_held_is_delivered_after_what_came_before_it() {
        let mut route = Route::Answering;
        route.on(Message(answer_text()));
        route.on(Message("snapshot".into()));
        route.on(Closed);
        assert_eq!(route.go_live(3), vec![Message("snapshot".into()), Closed]);
    }

    #[test]
    fn a_refusal_is_the_heartbeats_typed_error_and_the_socket_is_done() {
        let mut route = Route::Answering;
        let refusal = r#"{"type":"error","error":{"code":"forbidden","reason":"no","message":"forbidden: no"}}"#;
        match route.on(Message(refusal.into())) {
            Step::Answered(Some(Err(PresenceError::Forbidden { reason }))) => {
                assert_eq!(reason, "no")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(route, Route::Dropped);
        assert_eq!(route.on(Closed), Step::Nothing);
    }

    #[test]
    fn a_socket_that_closes_or_says_something_else_first_sends_the_heartbeat_over_http() {
        let mut route = Route::Answering;
        assert_eq!(route.on(Closed), Step::Answered(None));
        assert_eq!(route, Route::Dropped);
        // An older server ignores `join=1`, and without a room token answers nothing useful.
        let mut route = Route::Answering;
        assert_eq!(
            route.on(Message(r#"{"type":"snapshot"}"#.into())),
            Step::Answered(None)
        );
        assert_eq!(route.on(Message("more".into())), Step::Nothing);
    }

    #[test]
    fn a_socket_opened_with_tokens_is_live_from_the_start() {
        let mut route = Route::Live(2);
        assert_eq!(route.on(Closed), Step::Deliver(2, Closed));
    }
}
