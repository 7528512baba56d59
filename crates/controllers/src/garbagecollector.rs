//! stub

pub fn start(_ctx: &crate::Context) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(async {})
}
