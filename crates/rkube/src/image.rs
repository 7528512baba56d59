//! `rkube image`: the local image store.

use anyhow::Context;

use crate::cli::ImageCommand;

pub async fn run(command: ImageCommand) -> anyhow::Result<()> {
    match command {
        ImageCommand::Import(args) => {
            let store = rkube_agent::image::ImageStore::open(&args.store.store)
                .with_context(|| format!("opening the image store {}", args.store.store.display()))?;
            for file in &args.files {
                let imported = store.import(file).with_context(|| format!("importing {}", file.display()))?;
                for image in imported {
                    let names =
                        if image.references.is_empty() { "<none>".to_owned() } else { image.references.join(", ") };
                    println!("{names}\t{}", image.manifest_digest);
                }
            }
            Ok(())
        }
        ImageCommand::List(args) => {
            let store = rkube_agent::image::ImageStore::open(&args.store)
                .with_context(|| format!("opening the image store {}", args.store.display()))?;
            for (reference, digest) in store.list().context("listing images")? {
                println!("{reference}\t{digest}");
            }
            Ok(())
        }
    }
}
