//! `write_deploy_info`: the Ansible module that records, on the target host,
//! what was just deployed. See `library/write_deploy_info.yml` for its
//! arguments and `image_lifecycle::deploy_info` for what it does.

use std::process::ExitCode;

fn main() -> ExitCode {
    image_lifecycle::ansible::run(image_lifecycle::deploy_info::write_module)
}
