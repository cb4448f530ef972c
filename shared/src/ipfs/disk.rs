//! Blocks on local disk: one file per block, named by its CID (the default backend; not under
//! Lambda).

use super::Cid;
use super::store::{Blocks, Blockstore, IpfsError, IpfsResult};
use async_trait::async_trait;
use std::path::PathBuf;

/// Blocks on local disk: one file per block, named by its CID.
pub struct DiskBlocks {
    dir: PathBuf,
}

pub type DiskBlockstore = Blockstore<DiskBlocks>;

fn io(err: std::io::Error) -> IpfsError {
    IpfsError::Unavailable(format!("local blockstore: {err}"))
}

impl DiskBlockstore {
    pub fn new(dir: PathBuf) -> Self {
        Blockstore(DiskBlocks { dir })
    }
}

#[async_trait]
impl Blocks for DiskBlocks {
    async fn get_block(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        match tokio::fs::read(self.dir.join(cid.to_string())).await {
            Ok(block) => Ok(Some(block)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io(err)),
        }
    }

    async fn put_block(&self, cid: &Cid, block: &[u8]) -> IpfsResult<()> {
        let path = self.dir.join(cid.to_string());
        if tokio::fs::try_exists(&path).await.map_err(io)? {
            return Ok(()); // content-addressed: already there means already right
        }
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        // Write then rename, so a reader never sees half a block.
        let partial = self
            .dir
            .join(format!("{cid}.{}.part", uuid::Uuid::new_v4()));
        tokio::fs::write(&partial, block).await.map_err(io)?;
        tokio::fs::rename(&partial, &path).await.map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfs::import;
    use crate::ipfs::store::{read, store};

    #[tokio::test]
    async fn the_disk_blockstore_round_trips_and_detects_corruption() -> crate::TestResult {
        let dir = std::env::temp_dir().join(format!("gantry-ipfs-{}", uuid::Uuid::new_v4()));
        let disk = DiskBlockstore::new(dir.clone());
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let file = store(&disk, &bytes).await?.file;
        assert_eq!(read(&disk, &file.root).await?, Some(bytes.clone()));
        let unknown = import(b"never stored").root;
        assert_eq!(read(&disk, &unknown).await?, None);
        // Flip one byte of a leaf: the read fails instead of serving altered bytes.
        let (leaf, _) = &file.blocks[1];
        let path = dir.join(leaf.to_string());
        let mut block = std::fs::read(&path)?;
        block[0] ^= 1;
        std::fs::write(&path, block)?;
        assert!(matches!(
            read(&disk, &file.root).await,
            Err(IpfsError::Mismatch(_))
        ));
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}
