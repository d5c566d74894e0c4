from click.testing import CliRunner

from cdc_bench.cli import main


def test_metrics_lists_new_metrics_with_direction_and_preset():
    result = CliRunner().invoke(main, ["metrics"], terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "lower" in lines["gmsd"] and "higher" in lines["ssimulacra2"] and "dataset" in lines["fid"]
    assert "preset jpeg-ai" in result.output and "psnr-y" in result.output
