//! The API's routes, each declared with what it does and who may call it, so that
//! `/api/openapi.json` is generated from the same declarations that build the router: a
//! route cannot be served without being described.

use axum::handler::Handler;
use axum::routing::{on, MethodFilter};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::context::Data;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    /// No session needed.
    Anyone,
    /// Any session (the dashboard's cookie, or a bearer token).
    SignedIn,
    /// A session of someone who may open the server's dashboard.
    GuildStaff,
    /// A session of the bot's owners.
    Owners,
}

impl Access {
    fn describe(self) -> &'static str {
        match self {
            Self::Anyone => "anyone",
            Self::SignedIn => "a signed-in user",
            Self::GuildStaff => {
                "the server's dashboard staff (Manage Server, a dashboard permission, or an owner)"
            }
            Self::Owners => "the bot's owners",
        }
    }
}

/// One route as the API description shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteDoc {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{name}` parameters.
    pub path: &'static str,
    /// What it does, in one line.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whose route it is: `host` or a plugin's name.
    pub owner: &'static str,
}

/// Routes and their descriptions, built together.
pub struct Routes {
    router: Router<Data>,
    docs: Vec<RouteDoc>,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

impl Routes {
    /// No route yet.
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            docs: Vec::new(),
        }
    }

    fn add<H, T>(
        mut self,
        filter: MethodFilter,
        method: &'static str,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, Data>,
        T: 'static,
    {
        self.router = self.router.route(path, on(filter, handler));
        self.docs.push(RouteDoc {
            method,
            path,
            summary,
            access,
            owner: "host",
        });
        self
    }

    /// A `GET` route.
    pub fn get<H: Handler<T, Data>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: H,
    ) -> Self {
        self.add(MethodFilter::GET, "GET", path, access, summary, handler)
    }

    /// A `POST` route.
    pub fn post<H: Handler<T, Data>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: H,
    ) -> Self {
        self.add(MethodFilter::POST, "POST", path, access, summary, handler)
    }

    /// A `PUT` route.
    pub fn put<H: Handler<T, Data>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: H,
    ) -> Self {
        self.add(MethodFilter::PUT, "PUT", path, access, summary, handler)
    }

    /// A `DELETE` route.
    pub fn delete<H: Handler<T, Data>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: H,
    ) -> Self {
        self.add(
            MethodFilter::DELETE,
            "DELETE",
            path,
            access,
            summary,
            handler,
        )
    }

    /// Wraps the routes added so far, e.g. in a layer that hands them their state.
    pub fn wrap(mut self, f: impl FnOnce(Router<Data>) -> Router<Data>) -> Self {
        self.router = f(self.router);
        self
    }

    /// These routes and `other`'s, `other`'s described as `owner`'s.
    pub fn merge(mut self, other: Routes, owner: &'static str) -> Self {
        self.router = self.router.merge(other.router);
        self.docs
            .extend(other.docs.into_iter().map(|d| RouteDoc { owner, ..d }));
        self
    }

    /// The descriptions.
    pub fn docs(&self) -> &[RouteDoc] {
        &self.docs
    }

    /// The router and the descriptions.
    pub fn into_parts(self) -> (Router<Data>, Vec<RouteDoc>) {
        (self.router, self.docs)
    }
}

/// One operation of the description (OpenAPI's Operation Object).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Operation {
    summary: &'static str,
    description: String,
    operation_id: String,
    /// Whose route it is (OpenAPI groups operations by these).
    tags: [&'static str; 1],
    #[serde(rename = "x-access")]
    access: Access,
    parameters: Vec<Value>,
    security: Value,
    responses: Value,
}

/// An OpenAPI 3.1 description of `docs`.
pub fn openapi(docs: &[RouteDoc]) -> Value {
    let error = json!({ "description": "`{code, message}`: what is wrong, in plain words", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let mut paths = Map::new();
    for d in docs {
        let params: Vec<Value> = d
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        let security = match d.access {
            Access::Anyone => json!([]),
            _ => json!([{ "session": [] }, { "bearer": [] }]),
        };
        let op_id = format!(
            "{}{}",
            d.method.to_lowercase(),
            d.path
                .split(['/', '{', '}', '-', '.'])
                .filter(|s| !s.is_empty() && *s != "api")
                .map(|s| {
                    let mut c = s.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .collect::<String>()
        );
        let op = serde_json::to_value(Operation {
            summary: d.summary,
            description: format!("Who may call it: {}.", d.access.describe()),
            operation_id: op_id,
            tags: [d.owner],
            access: d.access,
            parameters: params,
            security,
            responses: json!({ "2XX": { "description": "done" }, "4XX": error, "5XX": error }),
        })
        .expect("an operation serializes");
        paths
            .entry(d.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object")
            .insert(d.method.to_lowercase(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Heimdall API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The bot's HTTP API. Errors are `{code, message}`. Sessions: the dashboard's cookie (requests that change something send X-CSRF-Token), or `Authorization: Bearer` (`heimdall token --user ID`).",
        },
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE },
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } },
                },
            },
        },
        "paths": paths,
    })
}
