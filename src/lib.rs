//! The leptos-presence demo: pick a name and a room, then see who else is there.
//! It uses only `leptos_presence`'s public API, as any app would.

#![recursion_limit = "256"]

mod agent;
pub mod app;
pub mod auth;
mod landing;
mod room;

/// Browser entry point: hydrates the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
