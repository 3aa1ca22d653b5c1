# Reader-study analysis: the readers' answers against the questionnaire's key.


# Reads every answers CSV in reader_study.answers_dir present when the DAG is built (an added file
# changes the input set, so the next run redoes the analysis). With no answers it still runs and
# writes empty tables and a note saying how to run the study.
# The key is written by rule reader_study (the questionnaire kit, rules/reader_study.smk).
rule reader_study_analysis:
    input:
        key=rules.reader_study.output.key,
        answers=get_reader_answers,
    output:
        table_v=report(
            "results/reader_study/table_v.csv",
            caption="../report/reader_table_v.rst",
            category="Reader study",
            labels={"table": "V: realism and % judged real"},
        ),
        table_vi=report(
            "results/reader_study/table_vi.csv",
            caption="../report/reader_table_vi.rst",
            category="Reader study",
            labels={"table": "VI: per reader (r, C_b, CCC)"},
        ),
        classification=report(
            "results/reader_study/classification.csv",
            caption="../report/reader_classification.rst",
            category="Reader study",
            labels={"table": "real/synthetic classification per reader"},
        ),
        agreement=report(
            "results/reader_study/agreement.csv",
            caption="../report/reader_agreement.rst",
            category="Reader study",
            labels={"table": "agreement between readers"},
        ),
        note="results/reader_study/analysis_note.md",
    log:
        "logs/reader_study/analysis.log",
    benchmark:
        "benchmarks/out/reader_study/analysis.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    params:
        answers_dir=config["reader_study"]["answers_dir"],
    script:
        "../scripts/reader_study_analysis.py"
