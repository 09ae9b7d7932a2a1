"""TF Serving tooling: check, describe, configure and call a SavedModel.

Independent of how the SavedModel was built: every module here reads the files
(`saved_model.pb`, `variables/`) and never imports bert-hub's encoder code. The
`inspect` and `serving-config` subcommands (export/serving_cli.py) are thin
layers over it. This file only maps the package; import the modules themselves.

  files.py          reading a SavedModel's files: saved_model_dir,
                    read_saved_model, serving_meta_graph (the MetaGraph tagged
                    "serve"), signature_def(path, name)
  ops.py            can the server load it? saved_model_op_types,
                    ops_outside_allowlist (data/serving_ops_allowlist.txt: TF
                    2.12.1 + TF Text 2.12.1, as TF Serving images embed),
                    ops_outside_core_tensorflow
  inspect.py        what is in it? inspect_saved_model(path) -> a text report
  server_config.py  how to serve it? write_serving_config -> models.config and
                    batching_parameters.txt (BatchingParameters mirrors TF
                    Serving's message, which tensorflow-serving-api lacks)
  rest.py           how to call it over REST? rest_predict_body(inputs) -> the
                    JSON body of POST /v1/models/NAME:predict

The warmup file (assets.extra/tf_serving_warmup_requests) is written and read by
export/warmup.py, next to the requests every export puts in it.
"""
