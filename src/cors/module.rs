//! The CORS fields on every answer, as a Pingora downstream module: it sees
//! each request's `Origin` first and each response header as it is written,
//! whichever route writes it (refusals, memory hits, the slicer, Pingora's
//! cache and proxy phases), so no route can forget them. Installed only when
//! CORS is configured: without it no request pays for a module.

use std::any::Any;

use async_trait::async_trait;
use http::HeaderValue;
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::prelude::*;
use pingora_http::{RequestHeader, ResponseHeader};

use super::Cors;
use super::preflight::is_preflight;

/// Builds each request's [`CorsFields`].
pub struct CorsModule(pub &'static Cors);

impl HttpModuleBuilder for CorsModule {
    fn init(&self) -> Module {
        Box::new(CorsFields {
            cors: self.0,
            origin: None,
        })
    }
}

/// One request's part: its `Origin`, when that may read the answer.
pub struct CorsFields {
    cors: &'static Cors,
    origin: Option<HeaderValue>,
}

#[async_trait]
impl HttpModule for CorsFields {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        // A preflight's answer has fields of its own, and a refused one none.
        if is_preflight(req) {
            return Ok(());
        }
        self.origin = req
            .headers
            .get(http::header::ORIGIN)
            .filter(|o| self.cors.allows(o))
            .cloned();
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        if let Some(origin) = &self.origin {
            self.cors.add_fields(resp, origin);
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
