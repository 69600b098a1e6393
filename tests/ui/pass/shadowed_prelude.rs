// Generated code must not depend on prelude names: these shadow all of them.
#![allow(dead_code, non_camel_case_types)]

use serde::{Deserialize, Serialize};

struct Result;
struct Option;
struct Some;
struct None;
struct Ok;
struct Err;
struct Vec;
struct Clone;
struct Default;
struct Send;
struct Sync;
struct String;
struct Box;
struct Iterator;
struct IntoIterator;
struct PhantomData;
struct TryFrom;
struct FnOnce;
mod state_core {}
mod serde_json {}

#[derive(::state_core::StatePath, Serialize, Deserialize)]
pub struct Profile {
    pub age: u32,
    pub nick: core::option::Option<std::string::String>,
}

#[derive(::state_core::StateScope, Serialize, Deserialize)]
pub struct Research {
    #[state(initial = 0)]
    pub attempts: u32,
    pub notes: std::vec::Vec<std::string::String>,
    #[state(default)]
    pub profile_count: u8,
    pub profile: Profile,
    #[state(user)]
    pub theme: core::option::Option<std::string::String>,
    #[state(skip)]
    pub cache: u8,
}

fn main() {}
