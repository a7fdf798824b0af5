//! Migration: Instance Clone and Legacy Import, with their shared run machinery.

pub mod clone;
