//! The README's quick start, as an app (`cargo leptos serve` here, then open
//! `http://127.0.0.1:3100/rooms/lobby?name=Ada` in two browsers).
#![recursion_limit = "256"]

pub mod app;

/// Browser entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
