//! What people look at: the built-in web dashboard served by `up` (its data routes and its
//! embedded page) and `top` in a terminal, over `up`'s state and history and the panel
//! catalogue.

pub mod api;
pub mod overview;
pub mod query;
pub mod top;
pub mod web;
