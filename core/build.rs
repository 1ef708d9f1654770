// `sqlx::migrate!` embeds the files of ../migrations at compile time; without this, a new
// migration file would not rebuild this crate and tests would run the old set.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
