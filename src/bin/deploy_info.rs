//! `deploy_info`: the Ansible module that reads back, on the target host,
//! what is deployed there (read only). See `library/deploy_info.yml` for its
//! arguments and `image_lifecycle::deploy_info` for what it does.

use std::process::ExitCode;

fn main() -> ExitCode {
    image_lifecycle::ansible::run(image_lifecycle::deploy_info::read_module)
}
