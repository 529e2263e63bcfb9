//! The pile's stylesheet in the document once, however many piles render.
//!
//! Every pile of one render (one request on the server; the page in the browser) registers in
//! a list kept on the root of the reactive owner tree. The first one holds the stylesheet and
//! renders its `<style>`; when the holder unmounts, the next live pile takes it over, so the
//! CSS is neither missing nor doubled. The server and the hydrating browser agree on the
//! holder (the first pile rendered), so the markup hydrates.

use leptos::prelude::*;
use std::sync::{Arc, Mutex};

/// The component's stylesheet, rendered once by the first pile on the page. Theme it with the
/// `--lp-*` custom properties listed at its top.
pub const FACE_PILE_CSS: &str = include_str!("face_pile.css");

/// The piles of one render, in the order they registered; the first holds the stylesheet.
#[derive(Clone, Default)]
struct Piles(Arc<Mutex<PileList>>);

#[derive(Default)]
struct PileList {
    made: u64,
    live: Vec<(u64, ArcRwSignal<bool>)>,
}

/// Registers the calling pile; the signal is true while it is the one that renders the CSS.
pub(super) fn claim() -> Signal<bool> {
    let piles = piles();
    let holds = ArcRwSignal::new(false);
    let id = {
        let mut list = piles.0.lock().unwrap_or_else(|e| e.into_inner());
        list.made += 1;
        let id = list.made;
        if list.live.is_empty() {
            holds.set(true);
        }
        list.live.push((id, holds.clone()));
        id
    };
    on_cleanup(move || {
        let mut list = piles.0.lock().unwrap_or_else(|e| e.into_inner());
        let was_holder = list.live.first().is_some_and(|(first, _)| *first == id);
        list.live.retain(|(pile, _)| *pile != id);
        if was_holder {
            if let Some((_, next)) = list.live.first() {
                next.set(true);
            }
        }
    });
    holds.into()
}

/// The list of this render's piles, kept on the root owner (made by the first pile).
fn piles() -> Piles {
    let Some(mut root) = Owner::current() else {
        return Piles::default();
    };
    while let Some(parent) = root.parent() {
        root = parent;
    }
    root.with(|| {
        use_context::<Piles>().unwrap_or_else(|| {
            let piles = Piles::default();
            provide_context(piles.clone());
            piles
        })
    })
}

/// The `<style>` a pile renders while it holds the stylesheet, with the page's CSP nonce when
/// the app uses one (leptos' `nonce` feature).
pub(super) fn style(holds: Signal<bool>) -> impl IntoView {
    let nonce = use_nonce();
    move || {
        holds
            .get()
            .then(|| view! { <style nonce=nonce.clone()>{FACE_PILE_CSS}</style> })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pile_holds_the_stylesheet_and_hands_it_on_when_it_goes() {
        let root = Owner::new();
        root.set();
        let (first, second, third) = (root.child(), root.child(), root.child());
        let a = first.with(claim);
        let deeper = second.with(|| second.child());
        let b = deeper.with(claim);
        let c = third.with(claim);
        assert_eq!(
            (a.get_untracked(), b.get_untracked(), c.get_untracked()),
            (true, false, false)
        );
        first.cleanup();
        assert_eq!((b.get_untracked(), c.get_untracked()), (true, false));
        third.cleanup();
        assert!(
            b.get_untracked(),
            "a pile that goes without holding it changes nothing"
        );
        deeper.cleanup();
        // A pile mounted after all others went holds it again.
        let fourth = root.child();
        let d = fourth.with(claim);
        assert!(d.get_untracked());
    }

    #[test]
    fn separate_renders_each_get_the_stylesheet() {
        let one = Owner::new();
        let two = Owner::new();
        assert!(one.with(claim).get_untracked());
        assert!(two.with(claim).get_untracked(), "another request's page");
    }
}
