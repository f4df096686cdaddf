//! Small file systems mounted for a test (root only): a tmpfs, a ramfs, or ext4, xfs or btrfs
//! on a loop image. Unmounted on drop. Callers that cannot mount skip their test through
//! [`skip`](super::skip), which fails the test in CI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted file system, unmounted on drop.
pub struct Mount {
    pub dir: PathBuf,
    /// The backing image, for the file systems on a loop device.
    pub image: Option<PathBuf>,
    pub tmp: tempfile::TempDir,
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Runs a command; its stderr is the error.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Mounts a tmpfs of `size` bytes.
pub fn tmpfs(size: u64) -> Result<Mount, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path().join("mnt");
    std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(&dir))?;
    Ok(Mount {
        dir,
        image: None,
        tmp,
    })
}

/// Mounts a ramfs: a file system without `fallocate`.
pub fn ramfs() -> Result<Mount, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path().join("mnt");
    std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
    run(Command::new("mount")
        .args(["-t", "ramfs", "ramfs"])
        .arg(&dir))?;
    Ok(Mount {
        dir,
        image: None,
        tmp,
    })
}

/// Makes an ext4 file system of `size` bytes in an image file and mounts it on a loop device.
pub fn ext4(size: u64) -> Result<Mount, String> {
    ext4_with(size, &[])
}

/// As [`ext4`], with more `mkfs.ext4` arguments.
pub fn ext4_with(size: u64, mkfs_args: &[&str]) -> Result<Mount, String> {
    image("mkfs.ext4", &["-q", "-F"], size, mkfs_args)
}

/// The smallest btrfs `mkfs.btrfs` makes with separate data and metadata (about 109 MiB).
pub const BTRFS_MIN: u64 = 114_294_784;

/// Makes a btrfs of `size` bytes (at least [`BTRFS_MIN`]; smaller needs `--mixed`) in an image
/// file and mounts it on a loop device.
pub fn btrfs(size: u64) -> Result<Mount, String> {
    btrfs_with(size, &[])
}

/// As [`btrfs`], with more `mkfs.btrfs` arguments (for example `--mixed` for a file system
/// under [`BTRFS_MIN`], whose data and metadata share block groups).
pub fn btrfs_with(size: u64, mkfs_args: &[&str]) -> Result<Mount, String> {
    image("mkfs.btrfs", &["-q", "-f"], size, mkfs_args)
}

/// The smallest xfs `mkfs.xfs` makes (300 MiB; the image is sparse).
pub const XFS_MIN: u64 = 300 << 20;

/// Makes an xfs of `size` bytes (at least [`XFS_MIN`]) in an image file and mounts it on a
/// loop device.
pub fn xfs(size: u64) -> Result<Mount, String> {
    xfs_with(size, &[])
}

/// As [`xfs`], with more `mkfs.xfs` arguments.
pub fn xfs_with(size: u64, mkfs_args: &[&str]) -> Result<Mount, String> {
    image("mkfs.xfs", &["-q", "-f"], size, mkfs_args)
}

/// Makes a file system with `mkfs` (and its `base_args`, then `mkfs_args`) in a sparse image
/// file of `size` bytes and mounts it on a loop device.
fn image(mkfs: &str, base_args: &[&str], size: u64, mkfs_args: &[&str]) -> Result<Mount, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let img = tmp.path().join("fs.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(size))
        .map_err(|e| e.to_string())?;
    run(Command::new(mkfs).args(base_args).args(mkfs_args).arg(&img))?;
    let dir = mount_image(&img, &tmp.path().join("mnt"))?;
    Ok(Mount {
        dir,
        image: Some(img),
        tmp,
    })
}

/// Mounts a file system image at `at` (created), on a loop device.
pub fn mount_image(img: &Path, at: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
    run(Command::new("mount").args(["-o", "loop"]).arg(img).arg(at))?;
    Ok(at.to_owned())
}

/// The loop device (`loopN`) an image file is attached to.
pub fn loop_device(img: &Path) -> Result<String, String> {
    let out = run(Command::new("losetup").arg("-j").arg(img))?;
    out.split(':')
        .next()
        .and_then(|d| d.strip_prefix("/dev/"))
        .map(str::to_owned)
        .ok_or_else(|| format!("no loop device for {}: {out:?}", img.display()))
}

/// Fields of `/sys/block/<dev>/stat`: writes completed, writes merged, sectors written, ms
/// writing, in flight (4..9), then the discard and flush fields.
pub fn block_stat(dev: &str) -> Vec<u64> {
    std::fs::read_to_string(format!("/sys/block/{dev}/stat"))
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}
