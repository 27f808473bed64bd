"""slmlab.course: the machinery that runs and measures the course; a lab never imports it.

`make course` (`runner`, `report`, `tree_memory`), `make bench` (`bench`),
`make bench-width` (`real_width`), `make variance` and `make results` (`variance`,
`results_merge`, `results_page`, `course_map`), `make labs` (`labgen`), `make checkpoint`
(`checkpoint`), the tone data (`tone_data`), the zoo's viability study (`viability`) and
these maps (`module_map`).
docs/development.md gives each module's reason to exist.

Module map (generated from the imports by `python -m slmlab.course.module_map`):
layer, module, what it imports from the package.

    0  course.labgen
    0  course.module_map
    0  course.results_merge
    0  course.tree_memory
    1  course.course_map     <- results
    1  course.tone_data      <- lexicon
    2  course.results_page   <- course.course_map, course.results_merge, results, saving
    3  course.real_width     <- export, phi3_family, saving, zoo
    3  course.report         <- environment, progress, saving
    3  course.viability      <- data, metrics, sft, zoo
    4  course.checkpoint     <- parameters, sft
    4  course.runner         <- course.report, course.tree_memory, progress, saving
    5  course.bench          <- course.report, course.results_merge, course.runner,
                                course.tree_memory, environment, saving
    5  course.variance       <- course.runner, saving
"""
