//! `rkube up`, `down`, `node` and `outside`: a cluster on one machine.

use crate::cli::{ClusterArgs, NodeCommand, OutsideArgs, UpArgs};

pub async fn up(_args: UpArgs) -> anyhow::Result<()> {
    anyhow::bail!("rkube up: not built yet")
}

pub async fn down(_args: ClusterArgs) -> anyhow::Result<()> {
    anyhow::bail!("rkube down: not built yet")
}

pub async fn node(_command: NodeCommand) -> anyhow::Result<()> {
    anyhow::bail!("rkube node: not built yet")
}

pub async fn outside(_args: OutsideArgs) -> anyhow::Result<()> {
    anyhow::bail!("rkube outside: not built yet")
}
