//! `rkube agent`: a node.

use crate::cli::AgentArgs;

pub async fn run(_args: AgentArgs) -> anyhow::Result<()> {
    anyhow::bail!("rkube agent: not built yet")
}
