"""DIR/train.log holds the run's own lines (what the terminal showed, with times), Lightning's
messages and the stop, appended by a resume."""

from conftest import train_in_process


def test_the_run_log_holds_what_the_terminal_said(tmp_path, capsys):
    train_in_process(tmp_path, steps=5)
    log = (tmp_path / "train.log").read_text()
    err = capsys.readouterr().err
    for line in ("run directory:", "MLP:", "done:"):
        assert line in log and line in err, line
    assert "[ddpm.run][INFO]" in log and "max_steps=5" in log  # Lightning's own message
    train_in_process(tmp_path, f"ckpt_path={tmp_path}/checkpoints/last.ckpt", steps=8)
    again = (tmp_path / "train.log").read_text()
    assert again.startswith(log) and "resuming at step 5" in again
