//! The one integration test binary: every test talks to a real MongoDB-compatible server.

mod helpers;

mod app_browser;
mod binary;
mod catalog;
mod clone;
mod config;
mod crypto;
mod dashboard;
mod data_pages;
mod dev_api;
mod discord;
mod gateway;
mod health;
mod hostile;
mod integrity;
mod legacy;
mod login;
mod models;
mod openapi;
mod redaction;
mod resume;
mod seed;
mod settings;
mod sharding;
mod stand_in;
mod sync;
mod undo;
