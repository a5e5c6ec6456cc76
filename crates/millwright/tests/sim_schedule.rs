//! `millwright sim --schedule FILE --labels FILE`: scheduled faults happen on the simulator's clock
//! and land in the ground-truth labels; a bad schedule is refused before anything starts.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn scheduled_faults_reach_the_labels_file() {
    let dir = TempDir::new("sim-schedule");
    let schedule = dir.path.join("faults.csv");
    std::fs::write(
        &schedule,
        "# test schedule\nstart_s,asset,kind,duration_s,point\n100,gd2,gas_release,50\n300,pump1,sensor_stuck,100,flow\n",
    )
    .unwrap();
    let labels = dir.path.join("labels.csv");
    let (s, l) = (schedule.to_str().unwrap(), labels.to_str().unwrap());
    // 500x: the second fault starts 0.6 s after start
    let mut sim = Proc::millwright(&[
        "sim",
        "--modbus",
        "127.0.0.1:0",
        "--schedule",
        s,
        "--labels",
        l,
        "--speed",
        "500",
        "--fault-interval",
        "0",
    ]);
    sim.wait_line(
        "Millwright simulator: Modbus TCP on",
        Duration::from_secs(10),
    );
    let text = wait_for(
        "both scheduled faults in the labels",
        Duration::from_secs(15),
        || {
            let t = std::fs::read_to_string(&labels).map_err(|e| e.to_string())?;
            if t.contains("sensor_stuck") {
                Ok(t)
            } else {
                Err(t)
            }
        },
    );
    sim.sigterm();
    assert!(
        sim.wait_exit(Duration::from_secs(3))
            .is_some_and(|s| s.success())
    );
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0].contains(",gas_release,acme/plant1/utilities/compressor_house/gd2,,scheduled,100"),
        "{text}"
    );
    assert!(
        rows[1].contains(",sensor_stuck,acme/plant1/utilities/water/pump1,flow,scheduled,300"),
        "{text}"
    );
}

#[test]
fn bad_schedule_is_refused_with_file_and_line() {
    let dir = TempDir::new("sim-schedule-bad");
    let schedule = dir.path.join("bad.csv");
    std::fs::write(&schedule, "10,gd1,gas_release,60\n20,gd1,volcano,60\n").unwrap();
    let (st, _out, err) = run_to_end(
        &[
            "sim",
            "--modbus",
            "127.0.0.1:0",
            "--schedule",
            schedule.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert!(!st.success());
    assert!(
        err.contains("bad.csv:2: unknown fault kind \"volcano\""),
        "{err}"
    );
}
