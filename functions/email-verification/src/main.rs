//! POST /email/verify, /email/verify/resend: its entry in `gantry::app::FUNCTIONS`; the rules live in the area.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::EMAIL_VERIFICATION)
}
